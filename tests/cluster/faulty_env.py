"""Gymnasium envs that fail on purpose, for the fault-tolerance tests.

Runner processes import this module by the env id "faulty_env:<id>" (gymnasium imports
the part before the colon); the test module puts tests/cluster on PYTHONPATH before it
starts Ray, so Ray's workers can find it.
"""
from __future__ import annotations

import os
import signal

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class RaisingCartPole(CartPoleEnv):
    """CartPole whose `step` raises on its `raise_at`-th call (counted per copy)."""

    def __init__(self, raise_at: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.raise_at, self.calls = raise_at, 0

    def step(self, action):
        self.calls += 1
        if self.calls == self.raise_at:
            raise RuntimeError(f"injected failure at step {self.calls}")
        return super().step(action)


def _create_once(path: str) -> bool:
    """Create `path`; True only for the one caller that created it. Atomic (O_EXCL), because
    both runners of a test reach their crash step at about the same time."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class CrashingCartPole(CartPoleEnv):
    """CartPole that kills its own process (SIGKILL) on step `crash_at`, once per marker file.

    The marker makes the crash happen once: the replacement runner, on the same seed
    stream, would otherwise crash at the same step again.
    """

    def __init__(self, crash_at: int = 50, marker: str = "", **kwargs):
        super().__init__(**kwargs)
        self.crash_at, self.marker, self.calls = crash_at, marker, 0

    def step(self, action):
        self.calls += 1
        if self.calls == self.crash_at and self.marker and _create_once(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(action)


class ChaosCartPole(CartPoleEnv):
    """CartPole that, on each step with probability `p_nan`, returns a NaN observation and,
    with probability `p_raise`, raises; each injection appends one line ("nan" or "raise") to
    `log` (O_APPEND writes of one short line are atomic between processes)."""

    def __init__(self, p_nan: float = 0.0, p_raise: float = 0.0, log: str = "", **kwargs):
        super().__init__(**kwargs)
        self.p_nan, self.p_raise, self.log = p_nan, p_raise, log
        self.chaos_rng = np.random.default_rng()  # independent of the farm's seeds on purpose

    def _note(self, kind: str) -> None:
        if self.log:
            handle = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(handle, f"{kind}\n".encode())
            finally:
                os.close(handle)

    def step(self, action):
        draw = self.chaos_rng.random()
        if draw < self.p_raise:
            self._note("raise")
            raise RuntimeError("injected chaos")
        obs, reward, terminated, truncated, info = super().step(action)
        if draw < self.p_raise + self.p_nan:
            self._note("nan")
            obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


for env_id, cls in (("RaisingCartPole-v0", RaisingCartPole), ("CrashingCartPole-v0", CrashingCartPole),
                    ("ChaosCartPole-v0", ChaosCartPole)):
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=cls, max_episode_steps=500)
