"""What PPO and APPO learners share: model, optimizer, normalizer, device, weights, state.

The algorithm files (ppo.py, appo.py) hold the math; this file holds the bookkeeping.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rlfarm.agents.batch import DeviceStager
from rlfarm.agents.config import AlgoConfig, PolicyConfig
from rlfarm.agents.device import resolve_device
from rlfarm.agents.distributions import ActionSpec
from rlfarm.agents.fragment import Fragment
from rlfarm.agents.normalizer import RunningMeanStd, batch_moments, normalize_torch
from rlfarm.agents.optim import Adam
from rlfarm.agents.policy import ActorCritic, seeded_init


class NonFiniteUpdates(ArithmeticError):
    """`algo.max_skipped_updates` updates in a row had a non-finite loss or gradient."""


def count_skipped_update(learner: Any, cause: str) -> None:
    """Count an update that was rolled back for a non-finite `cause`, on any learner with
    `skipped_updates`, `skips_in_a_row` and `algo_cfg`; NonFiniteUpdates after
    `algo.max_skipped_updates` in a row."""
    learner.skipped_updates += 1
    learner.skips_in_a_row += 1
    if learner.skips_in_a_row >= learner.algo_cfg.max_skipped_updates:
        raise NonFiniteUpdates(
            f"{learner.skips_in_a_row} learner updates in a row had a non-finite {cause} "
            f"(algo.max_skipped_updates); each was skipped and the last finite weights kept")


class LearnerBase:
    """Owns the network, its Adam optimizer and the observation normalizer.

    Hooks for data-parallel learners (left None in one process; each rank counts only its own
    samples in env_steps_consumed, so give each rank total_env_steps / world_size):
    - ``grad_sync(params)``: called with the list of parameters after backward, before the
      grad-norm clip (all-reduce their grads);
    - ``moments_sync(mean, var, count) -> (mean, var, count)``: merges the batch's obs moments
      across learners before they join the normalizer, so every replica keeps equal stats.
    """

    algo_name = "base"

    def __init__(self, obs_space, action_space, policy_cfg: PolicyConfig | None = None,
                 algo_cfg: AlgoConfig | None = None, total_env_steps: int | None = None,
                 device: str | torch.device = "auto", seed: int | None = None):
        self.policy_cfg = policy_cfg or PolicyConfig()
        self.algo_cfg = algo_cfg or AlgoConfig(name=self.algo_name)
        self.total_env_steps = total_env_steps
        chosen = self.algo_cfg.device if device in (None, "auto") else device
        self.device = resolve_device(chosen)
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.action_spec = ActionSpec.from_space(action_space)
        if seed is None:
            seed = int(torch.randint(2**62, ()).item())
        # Initialised from a local generator: the global torch RNG is shared by every thread
        # of the process (two rlfarm.train calls in threads), so it cannot seed a model.
        self.model = seeded_init(ActorCritic(self.obs_shape, self.action_spec, self.policy_cfg), seed).to(self.device)
        self.optimizer = Adam(self.model.parameters(), lr=self.algo_cfg.lr, eps=1e-5)  # eps as CleanRL
        self.seed = seed
        self.generator = torch.Generator(device=self.device)  # minibatch order, on the device
        self.generator.manual_seed(seed + 1)
        self.normalizer = RunningMeanStd(self.obs_shape, clip=self.algo_cfg.obs_clip) if self.algo_cfg.normalize_obs else None
        self.version = 0
        self.env_steps_consumed = 0
        self.stage = DeviceStager(self.device)
        self.clip_range = torch.tensor(self.algo_cfg.clip_coef, device=self.device)
        """The ratio (and value) clip range of the current update; see anneal()."""
        self.clip_value = self.algo_cfg.clip_coef
        """The same as a Python float, for the metrics without a device sync."""
        self.graphs = None  # captured minibatch steps on CUDA (agents.cuda_graph.GraphCache)
        self.grad_sync: Callable[[list[torch.nn.Parameter]], None] | None = None
        self.moments_sync: Callable | None = None
        self.skipped_updates = 0
        """Updates refused for a non-finite loss or gradient (cumulative, this process)."""
        self.skips_in_a_row = 0

    # ----------------------------------------------------------------- the finite-update guard
    def snapshot(self) -> tuple[list[torch.Tensor], int]:
        """Copies of the weights and Adam's moments (on the device), to roll back to."""
        tensors = list(self.model.parameters()) + self.optimizer.state_tensors()
        return [t.detach().clone() for t in tensors], self.optimizer.steps

    @torch.no_grad()
    def keep_if_finite(self, snapshot: tuple[list[torch.Tensor], int], stats: Sequence[float]) -> bool:
        """True when every one of the update's `stats` (losses, grad norm) is finite; else roll
        the weights and Adam back to `snapshot` (in place: CUDA graphs hold their addresses),
        count the skip, and raise NonFiniteUpdates after `algo.max_skipped_updates` in a row."""
        if all(np.isfinite(stats)):
            self.skips_in_a_row = 0
            return True
        saved, steps = snapshot
        for current, before in zip(list(self.model.parameters()) + self.optimizer.state_tensors(), saved):
            current.copy_(before)
        self.optimizer.steps = steps
        count_skipped_update(self, "loss or gradient")
        return False

    # ----------------------------------------------------------------- per update helpers
    def check_fragments(self, fragments: Sequence[Fragment]) -> None:
        if not fragments:
            raise ValueError("update: no fragments")
        for fragment in fragments:
            if tuple(fragment.obs.shape[2:]) != self.obs_shape:
                raise ValueError(f"update: fragment obs shape {list(fragment.obs.shape[2:])} "
                                 f"does not match the learner's {list(self.obs_shape)}")
            if tuple(fragment.actions.shape[2:]) != self.action_spec.shape:
                raise ValueError(f"update: fragment action shape {list(fragment.actions.shape[2:])} "
                                 f"does not match the learner's {list(self.action_spec.shape)}")

    def anneal(self) -> float:
        """Set this update's lr and clip range: each decays linearly to 0 at total_env_steps
        when its `anneal_*` flag is on (constant without a total). Returns the lr."""
        cfg = self.algo_cfg
        remaining = 1.0
        if self.total_env_steps:
            remaining = max(0.0, 1.0 - self.env_steps_consumed / self.total_env_steps)
        lr = cfg.lr * (remaining if cfg.anneal_lr else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # A device tensor filled in place, so a captured CUDA graph reads this update's value.
        self.clip_value = cfg.clip_coef * (remaining if cfg.anneal_clip else 1.0)
        self.clip_range.fill_(self.clip_value)
        return lr

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalize with the stats frozen for this version (those the runners acted with)."""
        if self.normalizer is None:
            return obs
        mean, inv_std = self.normalizer.torch_params(self.device)
        return normalize_torch(obs, mean, inv_std, self.normalizer.clip)

    def merge_obs_stats(self, raw_obs: torch.Tensor) -> None:
        """After the update: fold the batch's raw obs moments into the normalizer."""
        if self.normalizer is None:
            return
        mean, var, count = batch_moments(raw_obs, len(self.obs_shape))
        if self.moments_sync is not None:
            mean, var, count = self.moments_sync(mean, var, count)
        self.normalizer.update_from_moments(mean, var, count)

    # ----------------------------------------------------------------- weights and state
    def get_weights(self) -> dict:
        """{"version", "params": {name: ndarray}, "normalizer": {...} | None} for ActingPolicy."""
        params = {name: tensor.detach().cpu().numpy().copy() for name, tensor in self.model.state_dict().items()}
        normalizer = self.normalizer.state_dict() if self.normalizer is not None else None
        return {"version": self.version, "params": params, "normalizer": normalizer}

    def describe(self) -> dict:
        """What a checkpoint must match to load into this learner."""
        return {"algo": self.algo_name, "obs_shape": list(self.obs_shape), "action": self.action_spec.describe(),
                "policy_config": dataclasses.asdict(self.policy_cfg),
                "normalize_obs": self.normalizer is not None}

    def state_dict(self) -> dict:
        """Everything with state, as tensors, numbers, strings, lists and dicts (weights_only-safe)."""
        normalizer = None
        if self.normalizer is not None:
            stats = self.normalizer.state_dict()
            normalizer = {"mean": torch.from_numpy(stats["mean"]), "var": torch.from_numpy(stats["var"]),
                          "count": stats["count"], "clip": stats["clip"], "epsilon": stats["epsilon"]}
        return {
            "describe": self.describe(),
            "algo_config": dataclasses.asdict(self.algo_cfg),
            "version": self.version,
            "env_steps_consumed": self.env_steps_consumed,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "normalizer": normalizer,
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
            "seed": self.seed,
        }

    def check_state_dict(self, state: dict) -> None:
        """Raise ValueError with a clear message if `state` cannot load into this learner."""
        for key in ("describe", "version", "env_steps_consumed", "model", "optimizer", "normalizer", "generator"):
            if key not in state:
                raise ValueError(f"missing entry {key!r}")
        theirs, ours = state["describe"], self.describe()
        for key, what in (("algo", "algorithm"), ("obs_shape", "observation shape"),
                          ("action", "action space"), ("normalize_obs", "algo.normalize_obs")):
            if theirs.get(key) != ours[key]:
                raise ValueError(f"{what} differs: checkpoint has {theirs.get(key)!r}, this run has {ours[key]!r}")
        model_state = self.model.state_dict()
        if set(state["model"]) != set(model_state):
            raise ValueError(f"model layers differ (checkpoint policy config {theirs.get('policy_config')}, "
                             f"this run {ours['policy_config']})")
        for name, tensor in model_state.items():
            if tuple(state["model"][name].shape) != tuple(tensor.shape):
                raise ValueError(f"model sizes differ at {name}: checkpoint {list(state['model'][name].shape)}, "
                                 f"this run {list(tensor.shape)} (checkpoint policy config {theirs.get('policy_config')})")
        self.optimizer.check_state_dict(state["optimizer"])
        if self.normalizer is not None and tuple(state["normalizer"]["mean"].shape) != self.obs_shape:
            raise ValueError("normalizer shape differs from the observation shape")

    def load_state_dict(self, state: dict) -> None:
        """Validate everything first, then load; on a failure half-way the old state is restored."""
        self.check_state_dict(state)
        backup = self.state_dict()
        try:
            self._load_unchecked(state)
        except Exception:
            self._load_unchecked(backup)
            raise

    def _load_unchecked(self, state: dict) -> None:
        self.model.load_state_dict({k: v.to(self.device) for k, v in state["model"].items()})
        self.optimizer.load_state_dict(state["optimizer"])
        if self.normalizer is not None:
            normalizer = state["normalizer"]
            self.normalizer.load_state_dict({"mean": np.asarray(normalizer["mean"]), "var": np.asarray(normalizer["var"]),
                                             "count": float(normalizer["count"]), "clip": normalizer["clip"],
                                             "epsilon": normalizer["epsilon"]})
        if state.get("generator_device") == self.device.type:
            self.generator.set_state(state["generator"])
        else:  # CPU and CUDA generators keep different states: reseed deterministically instead
            self.generator.manual_seed(int(state.get("seed", self.seed)) + 1 + int(state["version"]))
        self.version = int(state["version"])
        self.env_steps_consumed = int(state["env_steps_consumed"])
