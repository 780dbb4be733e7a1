"""rlfarm/Pendulum-v1: gymnasium's Pendulum-v1, batched in numpy.

Same constants (g = 10, m = l = 1, dt = 0.05, max speed 8, max torque 2), cost, reset
distribution and 200-step truncation as gymnasium's ``PendulumEnv``. The state is kept in
float64 like gymnasium's, so observations match it bit for bit after the float32 cast;
observations are [cos theta, sin theta, theta_dot]. Torques outside [-2, 2] are clipped.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.checks import check_number
from rlfarm.envs.single import SingleEnvView

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
MASS = 1.0
LENGTH = 1.0


class PendulumBatched(BatchedEnv):
    """N torque-controlled pendulums that should swing up and stay upright."""

    reset_draws = 2

    def __init__(self, num_envs: int = 1, *, g: float = 10.0, max_episode_steps: int = 200,
                 autoreset_mode: str = "next_step", runner_index: int = 0,
                 render_mode: str | None = None):
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        super().__init__(num_envs, spaces.Box(-high, high, dtype=np.float32),
                         spaces.Box(-MAX_TORQUE, MAX_TORQUE, shape=(1,), dtype=np.float32),
                         max_episode_steps=max_episode_steps, autoreset_mode=autoreset_mode,
                         runner_index=runner_index, render_mode=render_mode)
        self.g = check_number("g", g, positive=True)
        n = self.num_envs
        self.state = np.zeros((2, n), dtype=np.float64)  # theta, theta_dot
        self._buf = np.empty((3, n), dtype=np.float64)
        self._sin = np.zeros(n, dtype=np.float64)  # sin(theta), kept from the last observation
        self._no_termination = np.zeros(n, dtype=bool)

    def _reset_copies(self, copies, unit):
        self.state[0, copies] = unit[:, 0] * (2 * np.pi) - np.pi
        self.state[1, copies] = unit[:, 1] * 2.0 - 1.0
        self._sin[copies] = np.sin(self.state[0, copies])

    def _observe(self, copies):
        theta, theta_dot = self.state[:, copies]
        return np.stack([np.cos(theta), np.sin(theta), theta_dot], axis=1).astype(np.float32)

    def _physics(self, actions):
        theta, theta_dot = self.state
        torque = actions[:, 0]  # float32, clipped; gymnasium's torque terms are float32 too
        angle, cost, acc = self._buf
        # cost = angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2, where
        # angle_normalize(x) = (x + pi) mod 2 pi - pi; floor is much faster than np.mod
        np.add(theta, np.pi, out=angle)
        np.multiply(angle, 1.0 / (2 * np.pi), out=cost)
        np.floor(cost, out=cost)
        cost *= 2 * np.pi
        angle -= cost
        angle -= np.pi
        np.multiply(angle, angle, out=cost)
        np.multiply(theta_dot, theta_dot, out=acc)
        acc *= 0.1
        cost += acc
        cost += (torque * torque) * np.float32(0.001)
        # theta_dot += (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt, clipped; theta += theta_dot dt
        np.multiply(self._sin, 3 * self.g / (2 * LENGTH), out=acc)
        acc += torque * np.float32(3.0 / (MASS * LENGTH ** 2))
        acc *= DT
        theta_dot += acc
        np.clip(theta_dot, -MAX_SPEED, MAX_SPEED, out=theta_dot)
        np.multiply(theta_dot, DT, out=acc)
        theta += acc
        np.sin(theta, out=self._sin)
        obs = np.empty((3, self.num_envs), dtype=np.float32)  # returned as [N, 3], column-major
        np.cos(theta, out=obs[0], casting="same_kind")
        obs[1] = self._sin
        obs[2] = theta_dot
        rewards = np.negative(cost).astype(np.float32)
        return obs.T, rewards, self._no_termination.copy()

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return render_pendulum(self.state[0, 0])


def render_pendulum(theta: float, size: int = 200) -> np.ndarray:
    """A small numpy drawing of one pendulum, upright at theta = 0."""
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    center = size // 2
    t = np.linspace(0.0, 1.0, 120)
    px = (center + t * 0.4 * size * np.sin(theta)).astype(int).clip(0, size - 1)
    py = (center - t * 0.4 * size * np.cos(theta)).astype(int).clip(0, size - 1)
    for d in (-2, -1, 0, 1, 2):
        image[py, (px + d).clip(0, size - 1)] = (204, 77, 77)
    image[center - 3:center + 4, center - 3:center + 4] = (0, 0, 0)
    return image


class PendulumEnv(SingleEnvView):
    """One rlfarm Pendulum, what `gymnasium.make("rlfarm/Pendulum-v1")` returns."""

    batched_cls = PendulumBatched
