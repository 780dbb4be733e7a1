"""BatchedEnv: N copies of a simulation stepped together in numpy, as a gymnasium VectorEnv.

A subclass holds its state in preallocated arrays and implements three methods:

- ``_reset_copies(copies, unit)``: reset the state of the copies in the index array
  ``copies`` from ``unit``, float64 uniforms [len(copies), reset_draws] drawn from each
  copy's own stream (see envs/rng.py);
- ``_physics(actions) -> (obs, rewards, terminated)``: advance every copy one step in place;
  ``obs`` is a fresh float32 [N, *obs_shape] array, ``rewards`` float32 [N], ``terminated``
  bool [N]. A subclass whose state can go bad lists those copies in ``self._bad_copies``
  (and may say why in ``self._bad_reason``, shown as ``infos["env_error_message"]``);
- ``_observe(copies) -> float32 [len(copies), *obs_shape]``.

The base class does the rest with array operations only: action checks, truncation after
``max_episode_steps``, the two autoreset modes, episode returns and lengths, and ``infos``:

- ``infos["episode"] = {"r": float32[N], "l": int32[N]}``, ``infos["_episode"] = bool[N]``,
  present at every step (rows valid where the mask is set);
- with ``autoreset_mode="same_step"``, ``infos["final_obs"]`` (dense float32 [N, *obs_shape])
  and ``infos["_final_obs"]`` (bool [N]), present at every step;
- ``infos["env_errors"]`` (int), present at a step where copies went bad: those copies are
  reset, get reward 0 and ``truncated=True``, and do not count as finished episodes.

Actions (checked by envs.checks.ActionChecker): a discrete action must be an integer array
of shape [N] in range; a Box action a float array of shape [N, *shape] without NaN. Anything
else raises ValueError saying what was expected and what came. Box actions outside the
bounds are clipped to them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlfarm.envs.checks import ActionChecker, check_int
from rlfarm.envs.rng import CopyStreams

AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}


def parse_autoreset_mode(mode: str | AutoresetMode) -> AutoresetMode:
    if isinstance(mode, AutoresetMode) and mode in AUTORESET_MODES.values():
        return mode
    if isinstance(mode, str) and mode in ("NextStep", "SameStep"):  # gymnasium's own spelling
        return AutoresetMode(mode)
    if mode not in AUTORESET_MODES:
        raise ValueError(f"autoreset_mode: expected one of {sorted(AUTORESET_MODES)}, got {mode!r}")
    return AUTORESET_MODES[mode]


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


class BatchedEnv(VectorEnv):
    """Base class of the numpy-batched rlfarm envs (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30,
                                "autoreset_mode": AutoresetMode.NEXT_STEP}
    reset_draws: int = 1
    """How many uniforms each copy draws at each reset."""

    def __init__(self, num_envs: int, single_observation_space: spaces.Box,
                 single_action_space: spaces.Space, *, max_episode_steps: int,
                 autoreset_mode: str | AutoresetMode = "next_step", runner_index: int = 0,
                 render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.max_episode_steps = check_int("max_episode_steps", max_episode_steps, 1)
        self.runner_index = check_int("runner_index", runner_index, 0)
        self.render_mode = render_mode
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, self.num_envs)
        self.action_space = batch_space(single_action_space, self.num_envs)
        self._check_actions = ActionChecker(single_action_space, self.num_envs)

        n = self.num_envs
        self._all_copies = np.arange(n)
        self._streams = CopyStreams(n)
        self._seeded = False
        self.default_seed = None  # used by the first reset() without a seed (envs.make's seed=)
        self._steps = np.zeros(n, dtype=np.int32)
        self._returns = np.zeros(n, dtype=np.float32)
        self._pending = None  # NEXT_STEP: copies that ended at the previous step
        self._bad_copies = None
        self._bad_reason: str | None = None
        self._needs_reset = True
        obs_shape = (n,) + single_observation_space.shape
        self._no_episode = {"r": _readonly(np.zeros(n, np.float32)), "l": _readonly(np.zeros(n, np.int32))}
        self._no_final_obs = _readonly(np.zeros(obs_shape, np.float32))

    # ------------------------------------------------------------ reset / step
    def reset(self, *, seed: int | np.random.SeedSequence | None = None, options: dict | None = None):
        """Reset every copy. ``seed`` restarts copy i's stream from (seed, runner_index, i);
        without one, the streams go on (or, before the first seed, start from OS entropy)."""
        if seed is None and not self._seeded:
            seed = self.default_seed
        if seed is not None or not self._seeded:
            self._streams.seed(seed, self.runner_index)
            self._seeded = True
            if seed is not None and not isinstance(seed, np.random.SeedSequence):
                super().reset(seed=int(seed))  # gymnasium's own np_random, for its tooling
        copies = self._all_copies
        self._reset_copies(copies, self._streams.uniform(copies, self.reset_draws))
        self._steps[:] = 0
        self._returns[:] = 0
        self._pending = None
        self._needs_reset = False
        return self._observe(copies), {}

    def _reset_some(self, copies: np.ndarray) -> None:
        self._reset_copies(copies, self._streams.uniform(copies, self.reset_draws))
        self._steps[copies] = 0
        self._returns[copies] = 0

    def step(self, actions):
        if self._needs_reset:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        actions = self._check_actions(actions)
        obs, rewards, terminated = self._physics(actions)
        steps = self._steps
        steps += 1
        truncated = steps >= self.max_episode_steps
        pending = self._pending
        if pending is not None:  # NEXT_STEP: copies that ended last step start over now
            self._reset_some(pending)
            obs[pending] = self._observe(pending)
            rewards[pending] = 0.0
            terminated[pending] = False
            truncated[pending] = False
            self._pending = None
        returns = self._returns
        returns += rewards
        infos: dict[str, Any] = {}
        bad = self._bad_copies
        if bad is not None:  # state went bad (NaN/Inf): reset now, end the episode as truncated
            self._bad_copies = None
            infos["env_errors"] = int(len(bad))
            if self._bad_reason:
                infos["env_error_message"], self._bad_reason = self._bad_reason, None
            self._reset_some(bad)
            obs[bad] = self._observe(bad)
            rewards[bad] = 0.0
            terminated[bad] = False
            truncated[bad] = True
        done = terminated | truncated
        if done.any():
            ended = np.flatnonzero(done)
            ep_returns = np.zeros(self.num_envs, np.float32)
            ep_returns[ended] = returns[ended]
            ep_lengths = np.zeros(self.num_envs, np.int32)
            ep_lengths[ended] = steps[ended]
            infos["episode"] = {"r": ep_returns, "l": ep_lengths}
            if self.autoreset_mode is AutoresetMode.NEXT_STEP:
                self._pending = ended
            else:
                infos["final_obs"] = obs.copy()
                infos["_final_obs"] = done
                self._reset_some(ended)
                obs[ended] = self._observe(ended)
        else:
            infos["episode"] = self._no_episode
            if self.autoreset_mode is AutoresetMode.SAME_STEP:
                infos["final_obs"] = self._no_final_obs
                infos["_final_obs"] = done
        if bad is not None:  # a reset after a bad state is an error, never a finished episode
            done = done.copy()
            done[bad] = False
        infos["_episode"] = done
        return obs, rewards, terminated, truncated, infos

    # -------------------------------------------------------------- subclass
    def _reset_copies(self, copies: np.ndarray, unit: np.ndarray) -> None:
        raise NotImplementedError

    def _physics(self, actions: np.ndarray):
        raise NotImplementedError

    def _observe(self, copies: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def render(self):
        """An rgb_array picture of copy 0 (None where the env has no picture)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, autoreset_mode={self.autoreset_mode.value})"
