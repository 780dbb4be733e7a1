"""The Fragment: a T-step x N-env block of contiguous numpy arrays, the unit of experience.

Runners write row t of every array after step t; learners read the whole block. One layout,
documented in docs/interfaces.md:

- ``obs[T+1, N, *obs]`` float32, raw (unnormalized). Row T is the obs after the last step and
  bootstraps the tail. Envs autoreset in the same step: where step t ended an episode,
  ``obs[t+1]`` is already the first obs of the next one.
- ``actions[T, N, *act]`` (int64 for Discrete/MultiDiscrete, float32 unclipped for Box),
  ``logp``, ``values``, ``rewards`` float32 ``[T, N]``; ``terminated``, ``truncated`` bool ``[T, N]``.
- ``final_values[T, N]`` float32: V(final obs) where truncated (a truncated episode
  bootstraps from it, a terminated one does not), else 0.
- ``policy_version``, ``runner_id``; ``episode_returns`` float32 ``[k]`` and
  ``episode_lengths`` int32 ``[k]`` of the episodes that ended in this fragment;
  ``env_ms``, ``inference_ms``, ``env_errors``.
- Off-policy learners need the final observation itself, not only its value: ``final_obs``
  float32 ``[k, *obs]`` holds it for the k copies truncated (not terminated) in the
  fragment, at flat rows ``final_index`` int64 ``[k]`` (row t, copy n -> t * N + n).
- ``autoreset_mode`` names how the envs reset. ``same_step`` is the layout above.
  ``next_step`` (gymnasium's default): where step t ended an episode, ``obs[t+1]`` is the
  final obs, and step t+1 only resets (reward 0, not a transition); ``done_before`` bool
  ``[N]`` marks the copies whose step before row 0 ended an episode, so row 0 is their reset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

# The per-step arrays, in the order the learner packs them.
STEP_FIELDS = ("actions", "logp", "values", "rewards", "terminated", "truncated", "final_values")


@dataclass
class Fragment:
    """A T x N block of experience from one policy version (see the module docstring)."""

    obs: np.ndarray
    actions: np.ndarray
    logp: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_values: np.ndarray
    policy_version: int = 0
    runner_id: int = 0
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    episode_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    env_ms: float = 0.0
    inference_ms: float = 0.0
    env_errors: int = 0
    final_obs: Optional[np.ndarray] = None
    """float32 [k, *obs]: final obs of the copies truncated (not terminated); None: none kept."""
    final_index: Optional[np.ndarray] = None
    """int64 [k]: their flat rows t * N + n."""
    autoreset_mode: str = "same_step"
    """How the envs reset: same_step (obs[t+1] is already the next episode's first obs) or
    next_step (obs[t+1] is the final obs; step t+1 is a reset, not a transition)."""
    done_before: Optional[np.ndarray] = None
    """next_step only, bool [N]: copies whose step before row 0 ended an episode."""

    @classmethod
    def allocate(cls, num_steps: int, num_envs: int, obs_shape: Sequence[int],
                 action_shape: Sequence[int] = (), action_dtype: np.dtype = np.int64,
                 **meta) -> "Fragment":
        """Empty arrays for a runner to fill row by row (``obs`` has num_steps + 1 rows)."""
        T, N = num_steps, num_envs
        return cls(
            obs=np.zeros((T + 1, N, *obs_shape), np.float32),
            actions=np.zeros((T, N, *action_shape), action_dtype),
            logp=np.zeros((T, N), np.float32),
            values=np.zeros((T, N), np.float32),
            rewards=np.zeros((T, N), np.float32),
            terminated=np.zeros((T, N), bool),
            truncated=np.zeros((T, N), bool),
            final_values=np.zeros((T, N), np.float32),
            **meta,
        )

    @property
    def num_steps(self) -> int:
        """Transitions in the fragment: T x N (what the learner consumes, the env-step count)."""
        return int(self.rewards.shape[0] * self.rewards.shape[1])

    @property
    def horizon(self) -> int:
        """T, the steps per env copy."""
        return int(self.rewards.shape[0])

    @property
    def num_envs(self) -> int:
        """N, the env copies."""
        return int(self.rewards.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (what travels through the object store)."""
        arrays = (self.obs, self.episode_returns, self.episode_lengths) + tuple(getattr(self, f) for f in STEP_FIELDS)
        optional = (self.final_obs, self.final_index, self.done_before)
        return int(sum(a.nbytes for a in arrays) + sum(a.nbytes for a in optional if a is not None))

    def validate(self) -> None:
        """Raise ValueError naming the first array whose shape or dtype breaks the layout."""
        T, N = self.rewards.shape if self.rewards.ndim == 2 else (None, None)
        if T is None:
            raise ValueError(f"Fragment.rewards: expected shape [T, N], got {self.rewards.shape}")
        expected = {"logp": np.float32, "values": np.float32, "rewards": np.float32,
                    "final_values": np.float32, "terminated": np.bool_, "truncated": np.bool_}
        for name, dtype in expected.items():
            array = getattr(self, name)
            if array.shape != (T, N) or array.dtype != dtype:
                raise ValueError(f"Fragment.{name}: expected {np.dtype(dtype).name} [{T}, {N}], "
                                 f"got {array.dtype.name} {list(array.shape)}")
        if self.obs.shape[:2] != (T + 1, N) or self.obs.dtype != np.float32:
            raise ValueError(f"Fragment.obs: expected float32 [{T + 1}, {N}, ...], "
                             f"got {self.obs.dtype.name} {list(self.obs.shape)}")
        if self.actions.shape[:2] != (T, N):
            raise ValueError(f"Fragment.actions: expected [{T}, {N}, ...], got {list(self.actions.shape)}")
        if self.autoreset_mode not in ("same_step", "next_step"):
            raise ValueError(f"Fragment.autoreset_mode: expected same_step or next_step, got {self.autoreset_mode!r}")
        if (self.final_obs is None) != (self.final_index is None):
            raise ValueError("Fragment.final_obs and Fragment.final_index: give both or neither")
        if self.final_obs is not None:
            k = len(self.final_index)
            if self.final_obs.shape != (k, *self.obs.shape[2:]) or self.final_obs.dtype != np.float32:
                raise ValueError(f"Fragment.final_obs: expected float32 [{k}, {', '.join(map(str, self.obs.shape[2:]))}], "
                                 f"got {self.final_obs.dtype.name} {list(self.final_obs.shape)}")
            if k and (self.final_index.min() < 0 or self.final_index.max() >= T * N):
                raise ValueError(f"Fragment.final_index: rows must lie in [0, {T * N})")
        if self.done_before is not None and self.done_before.shape != (N,):
            raise ValueError(f"Fragment.done_before: expected bool [{N}], got {list(self.done_before.shape)}")

    @staticmethod
    def concat(fragments: Sequence["Fragment"]) -> "Fragment":
        """Join fragments of equal T along the env axis (one learner batch).

        Episode stats are joined, timings summed; `policy_version` is the oldest one and
        `runner_id` is -1 when runners differ. A single fragment is returned as is.
        """
        if not fragments:
            raise ValueError("Fragment.concat: no fragments")
        if len(fragments) == 1:
            return fragments[0]
        horizons = {f.horizon for f in fragments}
        if len(horizons) != 1:
            raise ValueError(f"Fragment.concat: fragments differ in length T: {sorted(horizons)}")
        joined = {name: np.concatenate([getattr(f, name) for f in fragments], axis=1)
                  for name in ("obs",) + STEP_FIELDS}
        runner_ids = {f.runner_id for f in fragments}
        modes = {f.autoreset_mode for f in fragments}
        if len(modes) != 1:
            raise ValueError(f"Fragment.concat: fragments differ in autoreset_mode: {sorted(modes)}")
        return Fragment(
            **joined,
            policy_version=min(f.policy_version for f in fragments),
            runner_id=runner_ids.pop() if len(runner_ids) == 1 else -1,
            episode_returns=np.concatenate([f.episode_returns for f in fragments]).astype(np.float32, copy=False),
            episode_lengths=np.concatenate([f.episode_lengths for f in fragments]).astype(np.int32, copy=False),
            env_ms=float(sum(f.env_ms for f in fragments)),
            inference_ms=float(sum(f.inference_ms for f in fragments)),
            env_errors=int(sum(f.env_errors for f in fragments)),
            **_concat_final_obs(fragments),
            autoreset_mode=modes.pop(),
            done_before=None if all(f.done_before is None for f in fragments) else np.concatenate(
                [np.zeros(f.num_envs, bool) if f.done_before is None else f.done_before for f in fragments]),
        )


def _concat_final_obs(fragments: Sequence[Fragment]) -> dict:
    """final_obs and final_index of fragments joined along the env axis (rows renumbered)."""
    if all(f.final_obs is None for f in fragments):
        return {}
    total_envs = sum(f.num_envs for f in fragments)
    obs, index, offset = [], [], 0
    for f in fragments:
        if f.final_obs is not None:
            rows, copies = np.divmod(f.final_index, f.num_envs)
            obs.append(f.final_obs)
            index.append(rows * total_envs + copies + offset)
        offset += f.num_envs
    return {"final_obs": np.concatenate(obs).astype(np.float32, copy=False),
            "final_index": np.concatenate(index).astype(np.int64, copy=False)}


@dataclass
class FragmentMeta:
    """What the driver reads of a Fragment without touching its arrays: the Ray farm sends it
    beside the fragment's object ref, and both farms count steps and episodes from it."""

    runner_id: int
    policy_version: int
    horizon: int
    """T, the steps per env copy."""
    num_steps: int
    """T x N transitions (the env-step count)."""
    episode_returns: np.ndarray
    """float32 [k]: returns of the episodes that ended in the fragment."""
    episode_lengths: np.ndarray
    """int32 [k]: their lengths."""
    env_ms: float
    inference_ms: float
    env_errors: int
    nbytes: int
    """Bytes of the fragment's arrays (what travels through the object store)."""
    sample_ms: float = 0.0
    """Wall time of the runner's `sample()` call (0 where nobody timed it)."""
    sample_cpu_ms: float = 0.0
    """CPU time of the sampling thread in `sample()` (0 where nobody timed it)."""
    rss_mb: float = float("nan")
    """Resident memory of the runner's process after sampling (NaN where not read)."""

    @classmethod
    def of(cls, fragment: Fragment, **gauges: float) -> "FragmentMeta":
        """The metadata of `fragment`, plus the runner's `gauges` (sample_ms, sample_cpu_ms, rss_mb)."""
        return cls(runner_id=int(fragment.runner_id), policy_version=int(fragment.policy_version),
                   horizon=fragment.horizon, num_steps=fragment.num_steps,
                   episode_returns=fragment.episode_returns, episode_lengths=fragment.episode_lengths,
                   env_ms=float(fragment.env_ms), inference_ms=float(fragment.inference_ms),
                   env_errors=int(fragment.env_errors), nbytes=fragment.nbytes, **gauges)
