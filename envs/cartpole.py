"""rlfarm/CartPole-v1: gymnasium's CartPole-v1 dynamics, batched in fused float32 numpy.

Same constants, Euler integrator, termination bounds (|x| > 2.4, |theta| > 12 degrees),
reward 1 per step and truncation at 500 steps as gymnasium's ``CartPoleEnv``; the tests
check the observations against it step by step. The state lives in one preallocated
float32 [4, N] array whose rows are contiguous, and every operation writes into a
preallocated buffer, so a step allocates only the arrays it returns.
"""
from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from rlfarm.envs.base import BatchedEnv

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_LENGTH = 0.5
POLEMASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4
RESET_BOUND = 0.05


class CartPoleBatched(BatchedEnv):
    """N cart-poles; actions are 0 (push left) or 1 (push right)."""

    reset_draws = 4
    metadata = {**BatchedEnv.metadata, "render_fps": 50}

    def __init__(self, num_envs: int = 1, *, max_episode_steps: int = 500,
                 autoreset_mode: str = "next_step", runner_index: int = 0,
                 render_mode: str | None = None):
        high = np.array([X_LIMIT * 2, np.inf, THETA_LIMIT * 2, np.inf], dtype=np.float32)
        super().__init__(num_envs, spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2),
                         max_episode_steps=max_episode_steps, autoreset_mode=autoreset_mode,
                         runner_index=runner_index, render_mode=render_mode)
        n = self.num_envs
        self.state = np.zeros((4, n), dtype=np.float32)
        self._buf = np.empty((4, n), dtype=np.float32)
        self._pole_fell = np.empty(n, dtype=bool)
        # force = action * 2F - F, in float32 without a temporary
        self._force_table = np.array([-FORCE_MAG, FORCE_MAG], dtype=np.float32)

    def _reset_copies(self, copies, unit):
        self.state[:, copies] = (unit.T * (2 * RESET_BOUND) - RESET_BOUND).astype(np.float32)

    def _observe(self, copies):
        return self.state[:, copies].T

    def _physics(self, actions):
        x, x_dot, theta, theta_dot = self.state
        cos, sin, temp, acc = self._buf
        force = self._force_table.take(actions)
        np.cos(theta, out=cos)
        np.sin(theta, out=sin)
        # temp = (force + m_p l theta_dot^2 sin) / M
        np.multiply(theta_dot, theta_dot, out=temp)
        temp *= sin
        temp *= POLEMASS_LENGTH
        temp += force
        temp *= 1.0 / TOTAL_MASS
        # theta_acc = (g sin - cos temp) / (l (4/3 - m_p cos^2 / M))
        np.multiply(cos, cos, out=acc)
        acc *= -HALF_LENGTH * MASS_POLE / TOTAL_MASS
        acc += HALF_LENGTH * 4.0 / 3.0
        np.multiply(sin, GRAVITY, out=sin)
        np.multiply(cos, temp, out=force)  # force is spent: reuse it as scratch
        sin -= force
        np.divide(sin, acc, out=acc)  # acc = theta_acc
        # x_acc = temp - m_p l theta_acc cos / M  (into temp)
        cos *= acc
        cos *= POLEMASS_LENGTH / TOTAL_MASS
        temp -= cos
        # Euler: positions from the old velocities, then the velocities
        np.multiply(x_dot, TAU, out=cos)
        x += cos
        np.multiply(theta_dot, TAU, out=cos)
        theta += cos
        temp *= TAU
        x_dot += temp
        acc *= TAU
        theta_dot += acc
        obs = self.state.T.copy(order="K")  # [N, 4], column-major like gymnasium's
        terminated = np.abs(x, out=cos) > X_LIMIT
        np.greater(np.abs(theta, out=cos), THETA_LIMIT, out=self._pole_fell)
        terminated |= self._pole_fell
        rewards = np.ones(self.num_envs, dtype=np.float32)
        return obs, rewards, terminated

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return render_cartpole(self.state[:, 0])


def render_cartpole(state: np.ndarray, width: int = 300, height: int = 200) -> np.ndarray:
    """A small numpy drawing of one cart-pole (no pygame needed)."""
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    scale = width / (X_LIMIT * 2)
    cart_x = int(np.clip(state[0] * scale + width / 2, 0, width - 1))
    cart_y = height * 3 // 4
    image[cart_y - 8:cart_y + 8, max(cart_x - 20, 0):cart_x + 20] = (40, 40, 40)
    image[cart_y + 8:cart_y + 9, :] = (0, 0, 0)
    pole_len = 2 * HALF_LENGTH * scale
    t = np.linspace(0.0, 1.0, 100)
    px = (cart_x + t * pole_len * math.sin(state[2])).astype(int).clip(0, width - 1)
    py = (cart_y - t * pole_len * math.cos(state[2])).astype(int).clip(0, height - 1)
    for dx in (-1, 0, 1):
        image[py, (px + dx).clip(0, width - 1)] = (202, 152, 101)
    return image


from rlfarm.envs.single import SingleEnvView  # noqa: E402  (the view imports envs.base only)


class CartPoleEnv(SingleEnvView):
    """One rlfarm CartPole, what `gymnasium.make("rlfarm/CartPole-v1")` returns."""

    batched_cls = CartPoleBatched
