"""Gymnasium envs that fail on purpose, for the fault-tolerance tests.

Runner processes import this module by the env id "faulty_env:<id>" (gymnasium imports
the part before the colon); the test module puts tests/cluster on PYTHONPATH before it
starts Ray, so Ray's workers can find it.
"""
from __future__ import annotations

import os
import signal

import gymnasium as gym
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


for env_id, cls in (("RaisingCartPole-v0", RaisingCartPole), ("CrashingCartPole-v0", CrashingCartPole)):
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=cls, max_episode_steps=500)
