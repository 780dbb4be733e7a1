"""What SAC and DQN learners share: the replay buffer, the update-to-data ratio, versions,
the finite-update guard, weights for the runners and the checkpoint state.

The algorithm files (sac.py, dqn.py) hold the networks and one gradient step's math; this
file holds the bookkeeping. `update(fragments)` appends the fragments to the replay buffer
and then runs as many gradient steps as the env steps consumed have earned:
`algo.updates_per_step` per env step once the buffer holds `algo.learning_starts`
transitions. The fractional rest carries over, so over a run the ratio is exact.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Sequence

import numpy as np
import torch
from torch import nn

from rlfarm.agents.config import AlgoConfig, PolicyConfig
from rlfarm.agents.device import resolve_device
from rlfarm.agents.fragment import Fragment
from rlfarm.agents.learner import count_skipped_update
from rlfarm.agents.policy import ACTIVATIONS
from rlfarm.agents.replay import ReplayBuffer
from rlfarm.agents.spaces import ActionSpec


def plain_mlp(in_dim: int, hidden_sizes: list[int], activation: str) -> nn.Sequential:
    """Linear + activation layers with torch's default init (as CleanRL's and SB3's SAC/DQN)."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    return nn.Sequential(*layers)


def polyak(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- tau * online + (1 - tau) * target, every parameter in one foreach op."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), float(tau))


class OffPolicyLearner:
    """Base of SACLearner and DQNLearner. Subclasses set `algo_name`, build their networks and
    optimizers in `build()`, and implement `gradient_step(sample) -> tensor of LOSS_KEYS`,
    `acting_params()` and `acting_extra()`."""

    algo_name = "off-policy"
    LOSS_KEYS: tuple[str, ...] = ()
    n_step = 1
    """Steps summed in the replay's returns (DQN reads algo.n_step)."""

    def __init__(self, obs_space, action_space, policy_cfg: PolicyConfig | None = None,
                 algo_cfg: AlgoConfig | None = None, total_env_steps: int | None = None,
                 device: str | torch.device = "auto", seed: int | None = None):
        self.policy_cfg = policy_cfg or PolicyConfig()
        self.algo_cfg = algo_cfg or AlgoConfig(name=self.algo_name)
        self.total_env_steps = total_env_steps
        self.device = resolve_device(self.algo_cfg.device if device in (None, "auto") else device)
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.action_spec = ActionSpec.from_space(action_space)
        if self.policy_cfg.trunk != "mlp":
            raise ValueError(f"model.trunk: {self.algo_name} with a {self.policy_cfg.trunk} trunk is not built yet; use mlp")
        if seed is None:
            seed = int(torch.randint(2**62, ()).item())
        self.seed = seed
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the global RNG
            torch.manual_seed(seed)
            self.build()
        self.generator = torch.Generator(device=self.device)  # replay draws and the actor's noise
        self.generator.manual_seed(seed + 1)
        torch_dtype = torch.float32 if self.action_spec.kind == "box" else torch.int64
        self.replay = ReplayBuffer(self.algo_cfg.replay_size, self.obs_shape, self.action_spec.shape, torch_dtype,
                                   self.device, self.algo_cfg.gamma, self.n_step)
        self.save_replay = False
        """Whether state_dict() carries the replay buffer (log.checkpoint_replay)."""
        self.replay_restored = True
        """False after loading a checkpoint without the buffer: it refills before updates resume."""
        self.env_steps_consumed = 0
        self.gradient_steps = 0
        self.updates_owed = 0.0
        """Gradient steps earned by consumed env steps but not run yet (the fraction of one)."""
        self.skipped_updates = 0
        self.skips_in_a_row = 0
        self._weights: dict | None = None

    # ---- what subclasses provide --------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def gradient_step(self, sample) -> torch.Tensor:
        raise NotImplementedError

    def acting_params(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def acting_extra(self) -> dict:
        return {}

    def modules(self) -> dict[str, nn.Module]:
        """Every network (online and target), by name, for the snapshot and the checkpoint."""
        raise NotImplementedError

    def optimizers(self) -> dict:
        raise NotImplementedError

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Learned tensors outside the networks (SAC's log alpha)."""
        return {}

    # ---- versions ----------------------------------------------------------------------
    @property
    def version(self) -> int:
        """A new version every `publish_every` gradient steps: runners get weights at that rate."""
        return self.gradient_steps // self.algo_cfg.publish_every

    # ---- one update: append, then the gradient steps earned ------------------------------
    def update(self, fragments: Sequence[Fragment]) -> dict[str, float]:
        start = time.perf_counter()
        if not fragments:
            raise ValueError("update: no fragments")
        steps = 0
        warm = max(self.algo_cfg.learning_starts, 1)  # draws go with replacement: any fill will do
        for fragment in fragments:
            if tuple(fragment.obs.shape[2:]) != self.obs_shape:
                raise ValueError(f"update: fragment obs shape {list(fragment.obs.shape[2:])} "
                                 f"does not match the learner's {list(self.obs_shape)}")
            before = self.replay.size
            self.replay.add(fragment)
            steps += fragment.num_steps
            # Env steps earn gradient steps from the moment the buffer holds `warm` transitions.
            earned = fragment.num_steps if before >= warm else min(max(self.replay.size - warm, 0), fragment.num_steps)
            self.updates_owed += self.algo_cfg.updates_per_step * earned
        self.env_steps_consumed += steps
        count = int(math.floor(self.updates_owed + 1e-9))
        self.updates_owed -= count
        metrics: dict[str, float] = {}  # no losses to report before the first gradient step
        if count:
            snapshot = self._snapshot()
            totals = torch.zeros(len(self.LOSS_KEYS), device=self.device)
            for _ in range(count):
                totals += self.gradient_step(self.replay.sample(self.algo_cfg.batch_size, self.generator))
                self.gradient_steps += 1
            means = (totals / count).tolist()  # one device sync per update
            finite = self._keep_if_finite(snapshot, means, count)
            metrics = dict(zip(self.LOSS_KEYS, means if finite else [float("nan")] * len(means)))
        elapsed = time.perf_counter() - start
        metrics.update({
            "learner/gradient_steps": float(self.gradient_steps),
            "learner/updates_per_env_step": self.gradient_steps / max(self.env_steps_consumed, 1),
            "learner/replay_fill": self.replay.size / self.replay.capacity,
            "learner/replay_size": float(self.replay.size),
            "learner/lr": float(self.algo_cfg.lr),
            "perf/skipped_updates": float(self.skipped_updates),
            "perf/learner_update_ms": 1000.0 * elapsed,
            "perf/learner_samples_per_s": count * self.algo_cfg.batch_size / elapsed,
        })
        metrics.update(self.schedule_metrics())
        return metrics

    def schedule_metrics(self) -> dict[str, float]:
        return {}

    # ---- the finite-update guard (as LearnerBase's, over all the update's gradient steps) --
    def _state_tensors(self) -> list[torch.Tensor]:
        tensors = [p for module in self.modules().values() for p in module.parameters()]
        tensors += list(self.extra_tensors().values())
        for optimizer in self.optimizers().values():
            tensors += optimizer.state_tensors()
        return tensors

    def _snapshot(self):
        return ([t.detach().clone() for t in self._state_tensors()],
                {name: opt.steps for name, opt in self.optimizers().items()})

    @torch.no_grad()
    def _keep_if_finite(self, snapshot, stats: Sequence[float], count: int) -> bool:
        if all(np.isfinite(stats)):
            self.skips_in_a_row = 0
            return True
        saved, steps = snapshot
        for current, before in zip(self._state_tensors(), saved):
            current.copy_(before)
        for name, opt in self.optimizers().items():
            opt.steps = steps[name]
        self.gradient_steps -= count
        count_skipped_update(self, "loss")
        return False

    # ---- weights for the runners ----------------------------------------------------------
    def get_weights(self) -> dict:
        """{"version", "params": {name: ndarray}, "normalizer": None, "acting": {...}}. The numpy
        copy of the params is made once per version; "acting" (DQN's epsilon) is current."""
        if self._weights is None or self._weights["version"] != self.version:
            params = {name: t.detach().cpu().numpy().copy() for name, t in self.acting_params().items()}
            self._weights = {"version": self.version, "params": params, "normalizer": None}
        return {**self._weights, "acting": {"algo": self.algo_name, **self.acting_extra()}}

    # ---- state --------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"algo": self.algo_name, "obs_shape": list(self.obs_shape), "action": self.action_spec.describe(),
                "policy_config": dataclasses.asdict(self.policy_cfg), "normalize_obs": False}

    def state_dict(self) -> dict:
        state = {
            "describe": self.describe(),
            "algo_config": dataclasses.asdict(self.algo_cfg),
            "version": self.version,
            "env_steps_consumed": self.env_steps_consumed,
            "gradient_steps": self.gradient_steps,
            "updates_owed": self.updates_owed,
            "skipped_updates": self.skipped_updates,
            "model": {name: {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
                      for name, module in self.modules().items()},
            "optimizer": {name: opt.state_dict() for name, opt in self.optimizers().items()},
            "extra_tensors": {name: t.detach().cpu().clone() for name, t in self.extra_tensors().items()},
            "normalizer": None,
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
            "seed": self.seed,
        }
        if self.save_replay:
            state["replay"] = self.replay.state_dict()
        return state

    def check_state_dict(self, state: dict) -> None:
        for key in ("describe", "version", "env_steps_consumed", "gradient_steps", "model", "optimizer", "generator"):
            if key not in state:
                raise ValueError(f"missing entry {key!r}")
        theirs, ours = state["describe"], self.describe()
        for key, what in (("algo", "algorithm"), ("obs_shape", "observation shape"), ("action", "action space")):
            if theirs.get(key) != ours[key]:
                raise ValueError(f"{what} differs: checkpoint has {theirs.get(key)!r}, this run has {ours[key]!r}")
        for name, module in self.modules().items():
            saved = state["model"].get(name, {})
            for key, tensor in module.state_dict().items():
                if key not in saved or tuple(saved[key].shape) != tuple(tensor.shape):
                    raise ValueError(f"model sizes differ at {name}.{key} (checkpoint policy config "
                                     f"{theirs.get('policy_config')}, this run {ours['policy_config']})")
        for name, opt in self.optimizers().items():
            opt.check_state_dict(state["optimizer"][name])

    def load_state_dict(self, state: dict) -> None:
        """Validate, then load; without a saved replay buffer the buffer starts empty and
        refills (`replay_restored` is False) before gradient steps resume."""
        self.check_state_dict(state)
        for name, module in self.modules().items():
            module.load_state_dict({k: v.to(self.device) for k, v in state["model"][name].items()})
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizer"][name])
        with torch.no_grad():
            for name, tensor in self.extra_tensors().items():
                tensor.copy_(state["extra_tensors"][name])
        if state.get("generator_device") == self.device.type:
            self.generator.set_state(state["generator"])
        else:
            self.generator.manual_seed(int(state.get("seed", self.seed)) + 1 + int(state["gradient_steps"]))
        self.env_steps_consumed = int(state["env_steps_consumed"])
        self.gradient_steps = int(state["gradient_steps"])
        self.updates_owed = float(state.get("updates_owed", 0.0))
        self.skipped_updates = int(state.get("skipped_updates", 0))
        self.replay_restored = "replay" in state
        if self.replay_restored:
            self.replay.load_state_dict(state["replay"])
        self._weights = None
