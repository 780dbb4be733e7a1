"""ActingPolicy: the CPU inference copy of the policy that runners step envs with."""
from __future__ import annotations

import numpy as np
import torch

from rlfarm.agents.config import PolicyConfig
from rlfarm.agents.distributions import ActionSpec
from rlfarm.agents.normalizer import RunningMeanStd, normalize_torch
from rlfarm.agents.policy import ActorCritic


class ActingPolicy:
    """Acts on batched numpy observations with the weights a learner published.

    `set_weights(learner.get_weights())` installs params, normalizer stats and version.
    Sampling draws from this policy's own torch.Generator (seeded per runner), so two
    runners never share a stream and a seed repeats a run.
    """

    def __init__(self, obs_space, action_space, policy_cfg: PolicyConfig | None = None, *, seed: int | None = None):
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.action_spec = ActionSpec.from_space(action_space)
        self.model = ActorCritic(self.obs_shape, self.action_spec, policy_cfg or PolicyConfig())
        self.model.requires_grad_(False)
        self.model.eval()
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed) if seed is not None else int(torch.randint(2**62, ()).item()))
        self._version = -1  # no weights installed yet: the model's own random init
        self._norm_mean: torch.Tensor | None = None
        self._norm_inv_std: torch.Tensor | None = None
        self._norm_clip = 10.0

    @property
    def version(self) -> int:
        """Policy version of the installed weights (-1 before the first set_weights)."""
        return self._version

    def set_weights(self, weights: dict) -> None:
        """Install {"version", "params": {name: ndarray}, "normalizer": {...} or None}."""
        # torch.tensor copies: arrays from the object store are read-only, and the copy is a few KB
        params = {name: torch.tensor(np.asarray(value)) for name, value in weights["params"].items()}
        self.model.load_state_dict(params, strict=True)
        normalizer = weights.get("normalizer")
        if normalizer is None:
            self._norm_mean = self._norm_inv_std = None
        else:
            stats = RunningMeanStd(self.obs_shape, clip=normalizer.get("clip", 10.0))
            stats.load_state_dict(normalizer)
            self._norm_mean, self._norm_inv_std = stats.torch_params("cpu")
            self._norm_clip = stats.clip
        self._version = int(weights["version"])

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        obs_t = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
        if obs_t.shape[1:] != self.obs_shape:
            raise ValueError(f"obs: expected shape [N, {', '.join(map(str, self.obs_shape))}], got {list(obs_t.shape)}")
        return normalize_torch(obs_t, self._norm_mean, self._norm_inv_std, self._norm_clip)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, log-probs float32 [N], values float32 [N]) for obs [N, *obs_shape].

        Box actions are the unclipped Gaussian sample (their log-prob is that sample's);
        pass them through `env_actions` before `env.step`.
        """
        with torch.inference_mode():
            actions, logp, values = self.model.act(self._obs_tensor(obs), self.generator, deterministic)
        return actions.numpy(), logp.numpy(), values.numpy()

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) float32 [N] (e.g. of final observations, to bootstrap truncated episodes)."""
        with torch.inference_mode():
            return self.model.value(self._obs_tensor(obs)).numpy()

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Actions as the env takes them: Box actions clipped to their bounds, others unchanged."""
        if self.action_spec.kind != "box":
            return actions
        return np.clip(actions, self.action_spec.low, self.action_spec.high)
