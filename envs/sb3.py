"""`to_sb3`: an rlfarm env as a Stable-Baselines3 `VecEnv` (https://stable-baselines3.readthedocs.io).

The one place `envs/` touches a library beyond numpy and gymnasium: Stable-Baselines3 (the
`compare` extra, `pip install -e ".[compare]"`) is imported when `to_sb3` is called, never
on `import rlfarm.envs`.

SB3's VecEnv API differs from gymnasium's in three ways, all handled here with arrays:
`step` returns `dones = terminated | truncated` and a list of per-copy info dicts; a copy
that ended is reset in the same step, with its last observation in
`infos[i]["terminal_observation"]` and `infos[i]["TimeLimit.truncated"]` set when only the
time limit ended it; and `infos[i]["episode"] = {"r", "l", "t"}` is what SB3's logger reads
(VecMonitor's format), filled from rlfarm's own episode statistics. So the env runs with
`autoreset_mode="same_step"`. SB3 clips Box actions to the space before `step`.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from rlfarm.envs.base import AutoresetMode, parse_autoreset_mode


def to_sb3(env: Any, num_envs: int | None = None, *, seed: int | None = None, **kwargs: Any) -> Any:
    """A `stable_baselines3.common.vec_env.VecEnv` of `env`: an env id (made here with
    `num_envs` copies, `seed` and the env's `kwargs`, in same-step autoreset), or a VectorEnv
    from `envs.make(..., autoreset_mode="same_step")`."""
    from rlfarm.envs.registry import make

    if isinstance(env, str):
        if num_envs is None:
            raise ValueError("num_envs: give the number of copies to make of " + repr(env))
        env = make(env, num_envs, seed=seed, autoreset_mode="same_step", **kwargs)
    elif num_envs is not None or kwargs:
        raise ValueError("num_envs and keywords are for an env id; this env is already made")
    mode = env.metadata.get("autoreset_mode")
    if mode is None or parse_autoreset_mode(mode) is not AutoresetMode.SAME_STEP:
        raise ValueError(f"autoreset_mode: SB3 resets a copy in the step that ends it; make the env with "
                         f"autoreset_mode='same_step' (this one runs {mode!r})")
    return _vec_env_class()(env)


def _vec_env_class() -> type:
    """SB3VecEnv, defined on first use so that SB3 is imported only then."""
    global _SB3VecEnv
    if _SB3VecEnv is None:
        from stable_baselines3.common.vec_env.base_vec_env import VecEnv

        class SB3VecEnv(VecEnv):
            """An rlfarm VectorEnv (same-step autoreset) behind SB3's VecEnv interface."""

            def __init__(self, env: Any) -> None:
                self.env = env
                super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
                self._actions: np.ndarray | None = None
                self._start = time.perf_counter()

            def reset(self) -> np.ndarray:
                seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
                obs, _ = self.env.reset(seed=seed)  # copy i draws from (seed, runner, i): envs/rng.py
                self._reset_seeds()
                self._reset_options()
                return obs

            def step_async(self, actions: np.ndarray) -> None:
                self._actions = np.asarray(actions)

            def step_wait(self):
                obs, rewards, terminated, truncated, infos = self.env.step(self._actions)
                dones = terminated | truncated
                per_copy: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
                ended = np.flatnonzero(dones)
                if ended.size:
                    final = infos["final_obs"]
                    episode = infos["episode"]
                    elapsed = round(time.perf_counter() - self._start, 6)
                    time_limit = truncated & ~terminated
                    for i in ended.tolist():  # only the copies that ended: a handful per step
                        per_copy[i] = {"terminal_observation": final[i],
                                       "TimeLimit.truncated": bool(time_limit[i]),
                                       "episode": {"r": float(episode["r"][i]), "l": int(episode["l"][i]),
                                                   "t": elapsed}}
                return obs, rewards.astype(np.float32, copy=False), dones, per_copy

            def close(self) -> None:
                self.env.close()

            def get_attr(self, attr_name: str, indices=None) -> list[Any]:
                return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

            def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
                setattr(self.env, attr_name, value)

            def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
                result = getattr(self.env, method_name)(*args, **kwargs)
                return [result] * len(self._get_indices(indices))

            def env_is_wrapped(self, wrapper_class: type, indices=None) -> list[bool]:
                return [False] * len(self._get_indices(indices))

        _SB3VecEnv = SB3VecEnv
    return _SB3VecEnv


_SB3VecEnv: type | None = None
