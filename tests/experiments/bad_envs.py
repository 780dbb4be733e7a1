"""Foreign gymnasium envs that misbehave on purpose, registered on import (in this process).

- rlfarm_test/NaNCartPole-v0: CartPole whose obs (odd calls) or reward (even calls) is NaN or
  Inf on every `every`-th step of a copy;
- rlfarm_test/RaisingCartPole-v0: CartPole whose `step` always raises;
- rlfarm_test/HangingCartPole-v0: CartPole whose `step` hangs from a given call on.
"""
from __future__ import annotations

import os
import signal
import time

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class NaNCartPole(CartPoleEnv):
    def __init__(self, every: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.every, self.calls = every, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.calls += 1
        if self.calls % self.every == 0:
            if (self.calls // self.every) % 2:
                obs = np.full_like(obs, np.nan)
            else:
                reward = float("inf")
        return obs, reward, terminated, truncated, info


class AlwaysRaisingCartPole(CartPoleEnv):
    def step(self, action):
        raise ValueError("the solver diverged")


for env_id, cls in (("rlfarm_test/NaNCartPole-v0", NaNCartPole),
                    ("rlfarm_test/RaisingCartPole-v0", AlwaysRaisingCartPole)):
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=cls, max_episode_steps=500)


class HangingCartPole(CartPoleEnv):
    """CartPole whose `step` never returns from its `hang_at`-th call on (a solver that hangs);
    with `sigterm`, it first sends its own process SIGTERM (serial mode: the driver). With
    `slow_s`, each step from then on takes that long instead of hanging; `mark_path`, when
    given, is created when the hang (or the slowness) starts, for a test to act on."""

    def __init__(self, hang_at: int = 50, sigterm: bool = False, slow_s: float = 0.0,
                 mark_path: str = "", **kwargs):
        super().__init__(**kwargs)
        self.hang_at, self.sigterm, self.calls = hang_at, sigterm, 0
        self.slow_s, self.mark_path = slow_s, mark_path

    def step(self, action):
        self.calls += 1
        if self.calls >= self.hang_at:
            if self.mark_path and not os.path.exists(self.mark_path):
                open(self.mark_path, "w").close()
            if self.sigterm:
                os.kill(os.getpid(), signal.SIGTERM)
            if self.slow_s:
                time.sleep(self.slow_s)
            else:
                while True:
                    time.sleep(0.05)
        return super().step(action)


if "rlfarm_test/HangingCartPole-v0" not in gym.registry:
    gym.register(id="rlfarm_test/HangingCartPole-v0", entry_point=HangingCartPole, max_episode_steps=500)


class SlowStartCartPole(CartPoleEnv):
    """CartPole whose construction inside a Ray worker (a process whose parent is a raylet)
    first writes the raylet's PID to `mark_path`, then takes `start_s` seconds: a test kills
    that raylet while the farm waits for its runners. Built anywhere else, it is CartPole."""

    def __init__(self, mark_path: str = "", start_s: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        parent = os.getppid()
        try:
            with open(f"/proc/{parent}/comm") as stream:
                in_ray_worker = stream.read().strip() == "raylet"
        except OSError:
            in_ray_worker = False
        if in_ray_worker and mark_path:
            with open(mark_path + ".tmp", "w") as stream:
                stream.write(str(parent))
            os.replace(mark_path + ".tmp", mark_path)
            time.sleep(start_s)


if "rlfarm_test/SlowStartCartPole-v0" not in gym.registry:
    gym.register(id="rlfarm_test/SlowStartCartPole-v0", entry_point=SlowStartCartPole, max_episode_steps=500)
