"""rlfarm/KuramotoSivashinsky-v0: control the chaotic 1-D Kuramoto-Sivashinsky equation.

    u_t + u u_x + u_xx + u_xxxx = f(x, a),   x in [0, L) periodic, L = 22,

on 64 grid points, in Fourier space with numpy's rfft, batched over copies. Time stepping is
ETDRK4 (Kassam & Trefethen, SIAM J. Sci. Comput. 26, 2005): the stiff linear part
k^2 - k^4 is integrated exactly, the coefficients come from their contour-integral formulas.
Each action holds for ``control_dt`` = ``substeps`` x ``dt`` (default 5 x 0.05).

Forcing: f(x, a) = sum_j a_j exp(-d(x, x_j)^2 / (2 sigma^2)), M actuators (default 4) at
x_j = j L / M, sigma = 0.4, a_j in [-1, 1] (clipped), d the periodic distance. Observation:
u at ``num_sensors`` (default 8) equispaced points. Reward, as in Bucci et al., Proc. R. Soc.
A 2019: minus the dissipation <u_xx^2> and minus the power input <u f> (<.> the spatial mean),
at the end of the control interval. Each episode starts from a random field of the four
lowest modes (amplitudes up to 0.5), which the instability turns chaotic within ~30 time
units; episodes last 200 actions (truncated).

A copy whose state turns NaN or Inf is reset on its own; the step reports it in
``infos["env_errors"]`` (see envs/base.py).
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.checks import check_int, check_number
from rlfarm.envs.single import SingleEnvView


def etdrk4_coefficients(linear: np.ndarray, dt: float, contour_points: int = 32):
    """E, E2, Q, f1, f2, f3 of Kassam & Trefethen (2005), eq. (2.5)-(2.6), by contour means."""
    roots = np.exp(1j * np.pi * (np.arange(1, contour_points + 1) - 0.5) / contour_points)
    lr = dt * linear[:, None] + roots[None, :]
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr ** 2)) / lr ** 3, axis=1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr ** 3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr ** 2 + np.exp(lr) * (4 - lr)) / lr ** 3, axis=1))
    return np.exp(dt * linear), np.exp(dt * linear / 2), q, f1, f2, f3


class KuramotoSivashinskyBatched(BatchedEnv):
    """N copies of the forced KS equation (see the module docstring)."""

    reset_draws = 8

    def __init__(self, num_envs: int = 1, *, length: float = 22.0, grid_points: int = 64,
                 num_actuators: int = 4, num_sensors: int = 8, actuator_width: float = 0.4,
                 dt: float = 0.05, substeps: int = 5, max_episode_steps: int = 200,
                 autoreset_mode: str = "next_step", runner_index: int = 0,
                 render_mode: str | None = None):
        for name, value, low in (("grid_points", grid_points, 8), ("num_actuators", num_actuators, 1),
                                 ("num_sensors", num_sensors, 1), ("substeps", substeps, 1)):
            check_int(name, value, low)
        if grid_points % 2 or num_sensors > grid_points:
            raise ValueError(f"grid_points: expected an even int >= num_sensors ({num_sensors}), "
                             f"got {grid_points}")
        for name, value in (("length", length), ("dt", dt), ("actuator_width", actuator_width)):
            check_number(name, value, positive=True)
        obs_space = spaces.Box(-np.inf, np.inf, shape=(num_sensors,), dtype=np.float32)
        act_space = spaces.Box(-1.0, 1.0, shape=(num_actuators,), dtype=np.float32)
        super().__init__(num_envs, obs_space, act_space, max_episode_steps=max_episode_steps,
                         autoreset_mode=autoreset_mode, runner_index=runner_index,
                         render_mode=render_mode)
        self.length, self.grid_points, self.dt, self.substeps = length, grid_points, dt, substeps
        self.x = np.arange(grid_points) * (length / grid_points)
        self.wavenumbers = 2 * np.pi / length * np.arange(grid_points // 2 + 1)
        linear = self.wavenumbers ** 2 - self.wavenumbers ** 4
        # complex copies: numpy multiplies complex by complex faster than by float
        self._coef = tuple(c.astype(np.complex128) for c in etdrk4_coefficients(linear, dt))
        derivative = self.wavenumbers.copy()
        derivative[-1] = 0.0  # the Nyquist mode has no odd derivative
        self._advection_hat = -0.5j * derivative  # -(u^2/2)_x = advection_hat * F[u^2]
        centres = np.arange(num_actuators) * (length / num_actuators)
        distance = (self.x[None, :] - centres[:, None] + length / 2) % length - length / 2
        self.actuator_shapes = np.exp(-distance ** 2 / (2 * actuator_width ** 2))  # [M, n]
        self._actuator_hat = np.fft.rfft(self.actuator_shapes, axis=1)  # [M, n/2+1]
        self.sensor_index = np.round(np.arange(num_sensors) * grid_points / num_sensors).astype(int)
        # Parseval weights: the spatial mean of a product from its rfft coefficients
        weights = np.full(grid_points // 2 + 1, 2.0)
        weights[0] = weights[-1] = 1.0
        self._parseval = weights / grid_points ** 2
        self._state = np.zeros((self.num_envs, grid_points // 2 + 1), dtype=np.complex128)

    @property
    def u(self) -> np.ndarray:
        """The fields u(x) of all copies, float64 [N, grid_points] (a fresh array)."""
        return np.fft.irfft(self._state, n=self.grid_points, axis=1)

    def set_state(self, u: np.ndarray, copies=slice(None)) -> None:
        """Set the fields of some copies from physical values [k, grid_points] (for tests)."""
        self._state[copies] = np.fft.rfft(np.asarray(u, dtype=np.float64), axis=1)

    def _reset_copies(self, copies, unit):
        amplitude = unit - 0.5  # [k, 8]: cos and sin amplitudes of modes 1..4, in [-0.5, 0.5)
        state = np.zeros((len(copies), self._state.shape[1]), dtype=np.complex128)
        n = self.grid_points
        state[:, 1:5] = (amplitude[:, :4] - 1j * amplitude[:, 4:]) * (n / 2)
        self._state[copies] = state

    def _observe(self, copies):
        state = self._state if copies is self._all_copies else self._state[copies]
        u = np.fft.irfft(state, n=self.grid_points, axis=1)
        return u[:, self.sensor_index].astype(np.float32)

    def _nonlinear(self, v: np.ndarray, forcing_hat: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(v, n=self.grid_points, axis=1)
        u *= u
        out = np.fft.rfft(u, axis=1)
        out *= self._advection_hat
        out += forcing_hat
        return out

    def advance(self, v: np.ndarray, forcing_hat: np.ndarray, steps: int) -> np.ndarray:
        """``steps`` ETDRK4 steps of the Fourier coefficients v [N, n/2+1] (a new array)."""
        e, e2, q, f1, f2, f3 = self._coef
        two_f2 = 2 * f2
        for _ in range(steps):
            nv = self._nonlinear(v, forcing_hat)
            ev = e2 * v
            a = q * nv
            a += ev
            na = self._nonlinear(a, forcing_hat)
            b = q * na
            b += ev
            nb = self._nonlinear(b, forcing_hat)
            c = 2 * nb  # c = e2 a + q (2 nb - nv)
            c -= nv
            c *= q
            a *= e2
            c += a
            nc = self._nonlinear(c, forcing_hat)
            v = e * v  # v = e v + f1 nv + 2 f2 (na + nb) + f3 nc
            nv *= f1
            v += nv
            na += nb
            na *= two_f2
            v += na
            nc *= f3
            v += nc
        return v

    def _physics(self, actions):
        forcing_hat = actions.astype(np.float64) @ self._actuator_hat
        with np.errstate(all="ignore"):  # a blow-up is caught below, per copy
            self._state = v = self.advance(self._state, forcing_hat, self.substeps)
            power = v.real * forcing_hat.real
            power += v.imag * forcing_hat.imag
            magnitude = np.abs(v)
            magnitude *= magnitude
            magnitude *= self.wavenumbers ** 4
            magnitude += power
            rewards = -(magnitude @ self._parseval).astype(np.float32)
        finite = np.isfinite(rewards)
        if not finite.all():
            self._bad_copies = np.flatnonzero(~finite)
            v[self._bad_copies] = 0.0
        return self._observe(self._all_copies), rewards, np.zeros(self.num_envs, dtype=bool)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return render_field(self.u[0])


def render_field(u: np.ndarray, height: int = 160, scale: int = 4) -> np.ndarray:
    """A line plot of u(x) as uint8 [height, len(u) * scale, 3]."""
    width = len(u) * scale
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    xs = np.linspace(0, len(u) - 1, width)
    ys = np.interp(xs, np.arange(len(u)), u)
    rows = (height / 2 - ys / 4.0 * (height / 2 - 2)).astype(int).clip(0, height - 1)
    image[height // 2, :] = (200, 200, 200)
    image[rows, np.arange(width)] = (30, 30, 160)
    return image


class KuramotoSivashinskyEnv(SingleEnvView):
    """One KS system, what `gymnasium.make("rlfarm/KuramotoSivashinsky-v0")` returns."""

    batched_cls = KuramotoSivashinskyBatched
