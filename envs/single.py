"""A single-env view of a batched env, so that `gymnasium.make(id)` gives a plain `gymnasium.Env`.

The view runs the batched env with one copy; it exists for gymnasium tooling
(`check_env`, wrappers, human inspection). Farms step the batched env directly.
"""
from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rlfarm.envs.base import BatchedEnv


class SingleEnvView(gym.Env):
    """One copy of ``batched_cls``; subclasses set ``batched_cls``."""

    batched_cls: ClassVar[type[BatchedEnv]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # gymnasium.make reads the class's metadata (render modes) before building it
        cls.metadata = {k: v for k, v in cls.batched_cls.metadata.items() if k != "autoreset_mode"}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        self.batched = self.batched_cls(1, render_mode=render_mode, **kwargs)
        self.observation_space = self.batched.single_observation_space
        self.action_space = self.batched.single_action_space
        self.metadata = {k: v for k, v in self.batched.metadata.items() if k != "autoreset_mode"}
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self.batched.reset(seed=seed)
        return np.ascontiguousarray(obs[0]), {}

    def step(self, action):
        obs, rewards, terminated, truncated, infos = self.batched.step(np.asarray(action)[None])
        info: dict[str, Any] = {}
        if infos["_episode"][0]:
            info["episode"] = {"r": float(infos["episode"]["r"][0]), "l": int(infos["episode"]["l"][0])}
        if infos.get("env_errors"):
            info["env_errors"] = infos["env_errors"]
        return np.ascontiguousarray(obs[0]), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        return self.batched.render()
