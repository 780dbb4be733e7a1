"""rlfarm/HeatControl-v0: steer the temperature of a plate to a target field with heaters.

Physics: the 2-D heat equation u_t = alpha (u_xx + u_yy) + q(x, y) on the unit square,
with q = heater_gain * sum_k a_k H_k (H_k the indicator of heater patch k, a_k in [0, 1]).
Space: the explicit 5-point stencil on an n x n grid of nodes; time: forward Euler, which is
stable only for dt <= dx^2 / (4 alpha). The env takes ``substeps`` Euler steps of length
dt = control_dt / substeps per action, choosing substeps so that dt stays under the limit;
an explicit ``dt`` above the limit is refused with the limit in the message.

Boundaries: ``"fixed"`` holds the plate's edge at temperature 0 (nodes at x = i/(n+1));
``"insulated"`` has no heat flux through the edge (cell centres at x = (i+1/2)/n, mirror
ghost cells), so the stencil conserves the plate's total heat exactly.

Each episode draws a random smooth target field (the four lowest sine modes) and starts at
u = 0. Observation: float32 [2, n, n], channel 0 the temperature, channel 1 the target.
Reward: -mean((u - target)^2) - energy_cost * mean(a). Episodes last 200 steps (truncated).

Speed: the scheme is linear, so the ``substeps`` stencil steps of one action are one affine
map u <- P u + B a. With ``method="matrix"`` (the default up to 32 x 32) the env builds P and B
once, by running the same stencil on the n^2 unit fields, and a step is one float32 matrix
product over all copies, [N, n^2] @ [n^2, n^2]. With ``method="stencil"`` (the default above
32 x 32, where P grows as n^4) it runs the stencil directly on a [N, (n+2)^2] array with a
ghost ring. The tests check both against the analytic solution and for conservation.
"""
from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.checks import check_int, check_number
from rlfarm.envs.single import SingleEnvView

BOUNDARIES = ("fixed", "insulated")


def heater_patches(grid_size: int, num_heaters: int, coords: np.ndarray) -> np.ndarray:
    """float32 [K, n, n]: indicators of K square patches laid out on a near-square lattice."""
    cols = math.ceil(math.sqrt(num_heaters))
    rows = math.ceil(num_heaters / cols)
    half = 0.5 * min(1.0 / cols, 1.0 / rows) * 0.6
    x, y = np.meshgrid(coords, coords, indexing="ij")
    patches = np.zeros((num_heaters, grid_size, grid_size), dtype=np.float32)
    for k in range(num_heaters):
        cx, cy = (k % cols + 0.5) / cols, (k // cols + 0.5) / rows
        patches[k] = (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
        if not patches[k].any():  # a grid too coarse for the patch: take the nearest node
            patches[k][np.unravel_index(np.argmin((x - cx) ** 2 + (y - cy) ** 2), x.shape)] = 1
    return patches


class HeatControlBatched(BatchedEnv):
    """N plates with K heaters each (see the module docstring)."""

    reset_draws = 4

    def __init__(self, num_envs: int = 1, *, grid_size: int = 16, num_heaters: int = 4,
                 alpha: float = 1.0, control_dt: float = 0.0025, dt: float | None = None,
                 heater_gain: float = 60.0, energy_cost: float = 0.05, boundary: str = "fixed",
                 method: str = "auto", max_episode_steps: int = 200,
                 autoreset_mode: str = "next_step", runner_index: int = 0,
                 render_mode: str | None = None):
        check_int("grid_size", grid_size, 3)
        check_int("num_heaters", num_heaters, 1)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary: expected one of {BOUNDARIES}, got {boundary!r}")
        if method not in ("auto", "matrix", "stencil"):
            raise ValueError(f"method: expected 'auto', 'matrix' or 'stencil', got {method!r}")
        check_number("alpha", alpha, positive=True)
        check_number("control_dt", control_dt, positive=True)
        check_number("heater_gain", heater_gain)
        check_number("energy_cost", energy_cost)
        if dt is not None:
            check_number("dt", dt, positive=True)
        n = grid_size
        dx = 1.0 / (n + 1) if boundary == "fixed" else 1.0 / n
        limit = dx * dx / (4 * alpha)
        if dt is not None and dt > limit:
            raise ValueError(f"dt={dt} breaks the explicit scheme's stability limit "
                             f"0 < dt <= dx^2/(4 alpha) = {limit:.6g} (grid_size={n}, alpha={alpha}); "
                             "pass a smaller dt, or none and the env substeps")
        self.substeps = max(1, math.ceil(control_dt / (dt if dt is not None else 0.95 * limit) - 1e-9))
        self.dt = control_dt / self.substeps
        self.grid_size, self.num_heaters, self.alpha, self.dx = n, num_heaters, alpha, dx
        self.control_dt, self.heater_gain, self.energy_cost, self.boundary = \
            control_dt, heater_gain, energy_cost, boundary
        self.method = method if method != "auto" else ("matrix" if n <= 32 else "stencil")
        obs_space = spaces.Box(0.0, np.inf, shape=(2, n, n), dtype=np.float32)
        act_space = spaces.Box(0.0, 1.0, shape=(num_heaters,), dtype=np.float32)
        super().__init__(num_envs, obs_space, act_space, max_episode_steps=max_episode_steps,
                         autoreset_mode=autoreset_mode, runner_index=runner_index,
                         render_mode=render_mode)
        self.coords = (np.arange(1, n + 1) * dx) if boundary == "fixed" else (np.arange(n) + 0.5) * dx
        self.patches = heater_patches(n, num_heaters, self.coords)
        x, y = np.meshgrid(self.coords, self.coords, indexing="ij")
        self._modes = np.stack([np.sin(p * np.pi * x) * np.sin(q * np.pi * y)
                                for p, q in ((1, 1), (1, 2), (2, 1), (2, 2))]).reshape(4, n * n)
        copies = self.num_envs
        self._field = np.zeros((copies, n * n), dtype=np.float32)  # the temperature, copy-major
        self._target = np.zeros((copies, n * n), dtype=np.float32)
        self._scratch = np.empty((copies, n * n), dtype=np.float32)
        # heater k's temperature rise per unit power over one Euler step: [K, n*n]
        heater_rows = self.patches.reshape(num_heaters, n * n).astype(np.float64) * (heater_gain * self.dt)
        if self.method == "matrix":
            basis = np.eye(n * n)
            propagator = self._stencil_steps(basis, np.zeros_like(basis), self.substeps)
            heat_in = self._stencil_steps(np.zeros_like(heater_rows), heater_rows, self.substeps)
            self._propagator_t = np.ascontiguousarray(propagator, dtype=np.float32)  # rows: unit fields
            self._heater_t = heat_in.astype(np.float32)  # [K, n*n]: the field one action adds
        else:
            self._heater_rows = heater_rows.astype(np.float32)

    def _stencil_steps(self, fields: np.ndarray, source: np.ndarray, steps: int) -> np.ndarray:
        """``steps`` Euler steps of the 5-point stencil on fields [B, n*n] with a constant source."""
        n = self.grid_size
        ratio = self.alpha * self.dt / (self.dx * self.dx)
        padded = np.zeros((fields.shape[0], n + 2, n + 2), dtype=fields.dtype)
        centre = padded[:, 1:-1, 1:-1]
        centre[:] = fields.reshape(-1, n, n)
        source = source.reshape(-1, n, n)
        neighbours = np.empty_like(centre)
        for _ in range(steps):
            if self.boundary == "insulated":  # mirror ghosts: zero flux through every edge
                padded[:, 0, 1:-1], padded[:, -1, 1:-1] = padded[:, 1, 1:-1], padded[:, -2, 1:-1]
                padded[:, 1:-1, 0], padded[:, 1:-1, -1] = padded[:, 1:-1, 1], padded[:, 1:-1, -2]
            np.add(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], out=neighbours)
            neighbours += padded[:, 1:-1, :-2]
            neighbours += padded[:, 1:-1, 2:]
            neighbours *= ratio
            centre *= 1 - 4 * ratio
            centre += neighbours
            centre += source
        return np.ascontiguousarray(centre).reshape(-1, n * n)  # centre is a view into the ghost ring

    @property
    def temperature(self) -> np.ndarray:
        """A writable [N, n, n] view of the temperature field (for tests and analysis)."""
        return self._field.reshape(-1, self.grid_size, self.grid_size)

    @property
    def target(self) -> np.ndarray:
        return self._target.reshape(-1, self.grid_size, self.grid_size)

    def proportional_action(self, obs: np.ndarray, gain: float) -> np.ndarray:
        """The baseline controller: heater k's power is clip(gain * mean over its patch of
        (target - temperature), 0, 1), computed from a batch of observations [N, 2, n, n]."""
        error = obs[:, 1] - obs[:, 0]
        per_heater = np.einsum("nij,kij->nk", error, self.patches) / self.patches.sum(axis=(1, 2))
        return np.clip(gain * per_heater, 0.0, 1.0).astype(np.float32)

    def _reset_copies(self, copies, unit):
        amplitudes = unit.copy()
        amplitudes[:, 0] = 0.3 + 0.7 * amplitudes[:, 0]  # the (1, 1) mode sets the level
        amplitudes[:, 1:] = 0.6 * amplitudes[:, 1:] - 0.3
        self._target[copies] = np.maximum(amplitudes @ self._modes, 0.0)
        self._field[copies] = 0.0

    def _observe(self, copies):
        if copies is self._all_copies:
            field, target = self._field, self._target
        else:
            field, target = self._field[copies], self._target[copies]
        obs = np.empty((len(field), 2, self.grid_size * self.grid_size), dtype=np.float32)
        obs[:, 0] = field
        obs[:, 1] = target
        return obs.reshape(len(field), 2, self.grid_size, self.grid_size)

    def _physics(self, actions):
        if self.method == "matrix":
            np.matmul(self._field, self._propagator_t, out=self._scratch)
            self._scratch += actions @ self._heater_t
            self._field, self._scratch = self._scratch, self._field
        else:
            self._field[:] = self._stencil_steps(self._field, actions @ self._heater_rows, self.substeps)
        diff = np.subtract(self._field, self._target, out=self._scratch)
        diff *= diff
        rewards = diff.mean(axis=1)
        rewards += self.energy_cost * actions.mean(axis=1)
        np.negative(rewards, out=rewards)
        return self._observe(self._all_copies), rewards, np.zeros(self.num_envs, dtype=bool)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        top = np.concatenate([self.temperature[0], self.target[0]], axis=1)
        return heatmap(top, scale=max(1, 256 // self.grid_size))


def heatmap(values: np.ndarray, scale: int = 8, vmax: float | None = None) -> np.ndarray:
    """uint8 [h*scale, w*scale, 3]: blue (cold) to red (hot)."""
    vmax = float(values.max()) if vmax is None else vmax
    level = np.clip(values / (vmax if vmax > 0 else 1.0), 0.0, 1.0)
    image = np.stack([255 * level, 64 * (1 - np.abs(2 * level - 1)), 255 * (1 - level)], axis=-1)
    return np.repeat(np.repeat(image.astype(np.uint8), scale, axis=0), scale, axis=1)


class HeatControlEnv(SingleEnvView):
    """One plate, what `gymnasium.make("rlfarm/HeatControl-v0")` returns."""

    batched_cls = HeatControlBatched
