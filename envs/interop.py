"""rlfarm's envs for other trainers: gymnasium's vector API as gymnasium's own wrappers expect it.

rlfarm's runners want `infos["episode"]` and `infos["_episode"]` at every step (the
conventions of docs/interfaces.md). gymnasium's vector wrappers that record episodes
(`RecordEpisodeStatistics`, as CleanRL uses it) add those keys themselves and refuse an env
that already has them. `GymnasiumView` is the env without them; everything else (spaces,
autoreset mode, seeding, `final_obs`, `env_errors`) passes through unchanged.

`gymnasium.make_vec(id, n)` of an rlfarm id, the bridge (`rlfarm/Subprocess-v0`) or an id
that an installed package declares in the `rlfarm.envs` entry-point group returns a
GymnasiumView of the batched env (registry.register_all registers them so); `envs.make` and
the runners keep the env itself. Stable-Baselines3's VecEnv: envs/sb3.py.
"""
from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

RLFARM_INFO_KEYS = ("episode", "_episode")
"""The per-step keys rlfarm's conventions add and gymnasium's episode wrappers add themselves."""


class GymnasiumView(gym.vector.VectorWrapper):
    """An rlfarm VectorEnv as gymnasium's vector wrappers expect it: `infos` without
    rlfarm's per-step episode keys (a wrapper such as RecordEpisodeStatistics adds its own)."""

    def reset(self, *, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return obs, _without_episode_keys(infos)

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        return obs, rewards, terminated, truncated, _without_episode_keys(infos)


def _without_episode_keys(infos: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in infos.items() if key not in RLFARM_INFO_KEYS}


def to_gymnasium(env: gym.vector.VectorEnv) -> GymnasiumView:
    """`env` (from `envs.make`) for gymnasium's vector wrappers and gymnasium-style loops."""
    return env if isinstance(env, GymnasiumView) else GymnasiumView(env)


def gymnasium_vector(target: str, num_envs: int = 1, **kwargs: Any) -> GymnasiumView:
    """The `vector_entry_point` that rlfarm registers: `target` ("module:attr", a BatchedEnv
    subclass or a factory following the conventions) with `num_envs` copies, as a view."""
    module, _, attr = target.partition(":")
    return GymnasiumView(getattr(importlib.import_module(module), attr)(num_envs, **kwargs))
