"""ForeignVectorEnv: any gymnasium id behind gymnasium's Sync/AsyncVectorEnv, with rlfarm's
conventions (float32 obs and rewards, `infos["episode"]` every step, a dense float32
`infos["final_obs"]` in same_step mode, `infos["env_errors"]`).

Actions are checked like the batched envs' (envs.checks.ActionChecker, for Discrete and Box
spaces) before they reach the sub-envs: a bad action is the caller's bug and raises, while
an exception inside a sub-env is the env's problem. Each sub-env is wrapped in `ErrorGuard`, which turns an exception inside the env's `step`
into a reset of that copy (reward 0, truncated) and an `env_error` flag, so one crashing
copy neither kills the runner nor goes unnoticed: the copy ends no episode, and
`infos["env_error_message"]` carries the first exception's type, message and file:line. The guard runs inside async workers too.
"""
from __future__ import annotations

import traceback
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlfarm.envs.checks import ActionChecker, check_int
from rlfarm.envs.rng import runner_seed_sequence


class ErrorGuard(gym.Wrapper):
    """Resets the env when its step raises, and reports the event in `info["env_error"]`."""

    def step(self, action):
        try:
            return self.env.step(action)
        except Exception as err:  # noqa: BLE001 -- any env bug: count it, keep the farm alive
            frames = traceback.extract_tb(err.__traceback__)
            where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
            obs, info = self.env.reset()
            info = {**info, "env_error": 1, "env_error_message": f"{type(err).__name__}: {err}{where}"}
            return obs, 0.0, False, True, info


def _pop_env_errors(infos: dict, num_envs: int) -> tuple[np.ndarray, str | None]:
    """Remove ErrorGuard's flags: (bool [N] of the copies that raised, the first message).
    In same_step mode gymnasium moves the failing step's info under infos["final_info"], so
    the caller looks there too."""
    if "env_error" not in infos:
        return np.zeros(num_envs, bool), None
    raised = np.asarray(infos.pop("_env_error"), bool) & (np.asarray(infos.pop("env_error")) > 0)
    messages, mask = infos.pop("env_error_message", None), infos.pop("_env_error_message", None)
    first = str(messages[np.flatnonzero(mask)[0]]) if mask is not None and np.any(mask) else None
    return raised, first


def _float32_box(space: gym.Space, env_id: str) -> spaces.Box:
    if not isinstance(space, spaces.Box):
        raise ValueError(f"env_id {env_id!r}: rlfarm needs a Box observation space, got {space}")
    return spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                      shape=space.shape, dtype=np.float32)


class ForeignVectorEnv(VectorEnv):
    """A gymnasium vector env of a foreign id, with rlfarm's info conventions."""

    def __init__(self, env_id: str | EnvSpec, num_envs: int, *, autoreset_mode: AutoresetMode,
                 vectorization: str = "sync", runner_index: int = 0, **kwargs: Any):
        if vectorization not in ("sync", "async"):
            raise ValueError(f"vectorization: expected 'sync' or 'async', got {vectorization!r}")
        num_envs = check_int("num_envs", num_envs, 1)
        runner_index = check_int("runner_index", runner_index, 0)
        self.env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization,
                                vector_kwargs={"autoreset_mode": autoreset_mode},
                                wrappers=[ErrorGuard], **kwargs)
        self.num_envs = num_envs
        self.env_id = env_id if isinstance(env_id, str) else env_id.id
        self.runner_index = runner_index
        self.autoreset_mode = autoreset_mode
        self.metadata = {**self.env.metadata, "autoreset_mode": autoreset_mode}
        self.render_mode = self.env.render_mode
        self.single_observation_space = _float32_box(self.env.single_observation_space, self.env_id)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.single_action_space = self.env.single_action_space
        self.action_space = self.env.action_space
        space = self.single_action_space
        self._check_actions = ActionChecker(space, num_envs) if ActionChecker.supports(space) else None
        self._returns = np.zeros(num_envs, np.float32)
        self._lengths = np.zeros(num_envs, np.int32)
        self._restarting = np.zeros(num_envs, bool)
        self.default_seed = None

    def reset(self, *, seed: int | np.random.SeedSequence | None = None, options: dict | None = None):
        if seed is None and self.default_seed is not None:
            seed, self.default_seed = self.default_seed, None
        if seed is not None:
            # copy i of runner r gets its own seed, derived from (seed, r, i)
            seq = runner_seed_sequence(seed, self.runner_index)
            seed = [int(s) for s in seq.generate_state(self.num_envs, np.uint32)]
        obs, infos = self.env.reset(seed=seed, options=options)
        self._returns[:] = 0
        self._lengths[:] = 0
        self._restarting[:] = False
        return np.asarray(obs, dtype=np.float32), dict(infos)

    def step(self, actions):
        if self._check_actions is not None:
            actions = self._check_actions(actions)
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        obs = np.asarray(obs, dtype=np.float32)
        rewards = np.asarray(rewards, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        infos = dict(infos)
        self._returns += rewards
        self._lengths += 1
        restarted = self._restarting  # NEXT_STEP: this step was the reset step of these copies
        self._returns[restarted] = 0
        self._lengths[restarted] = 0
        done = terminated | truncated
        raised, message = _pop_env_errors(infos, self.num_envs)
        raised_final, message_final = _pop_env_errors(infos.get("final_info", {}), self.num_envs)
        raised |= raised_final
        infos["episode"] = {"r": np.where(done, self._returns, 0).astype(np.float32),
                            "l": np.where(done, self._lengths, 0).astype(np.int32)}
        infos["_episode"] = done & ~raised  # a copy reset after an exception ended no episode
        if raised.any():
            infos["env_errors"] = int(raised.sum())
            infos["env_error_message"] = message or message_final
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            mask = np.asarray(infos.pop("_final_obs", np.zeros(self.num_envs, bool)), dtype=bool)
            final_obs = np.zeros_like(obs)
            if mask.any():
                final_obs[mask] = np.stack(infos.pop("final_obs")[mask]).astype(np.float32)
            infos.pop("final_obs", None)
            infos["final_obs"], infos["_final_obs"] = final_obs, mask
            self._returns[done] = 0
            self._lengths[done] = 0
        else:
            self._restarting = done
        return obs, rewards, terminated, truncated, infos

    def render(self):
        return self.env.render()

    def close_extras(self, **kwargs):
        if hasattr(self, "env"):  # absent when make_vec failed in __init__ (e.g. a bad keyword)
            self.env.close()
