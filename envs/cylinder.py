"""rlfarm/CylinderJets-v0: cut the drag of a cylinder's wake with two synthetic jets.

The flow is Schäfer & Turek's case 2D-2 (Re = 100, "Benchmark computations of laminar flow
around a cylinder", 1996): a channel 2.2 x 0.41, a cylinder of diameter D = 0.1 at (0.2, 0.2),
a parabolic inflow of mean U = 1. The solver is the batched D2Q9 lattice Boltzmann scheme of
envs/lbm.py, ``resolution`` cells per diameter. The control is Rabault et al.'s (J. Fluid
Mech. 865, 2019, arXiv 1808.07664):

- action: one number a in [-1, 1]; the top jet (at 90 degrees, 10 degrees wide) blows the
  flow rate Q = a * max_jet * Q_ref and the bottom one (270 degrees) sucks it, so the net mass
  flux is zero up to round-off. Q_ref is the inflow's flow rate across the cylinder's span;
  Rabault bounds |Q| by 0.06 Q_ref;
- smoothing: within an action the jets' rate moves toward the new target as
  Q_s <- Q_s + beta (Q - Q_s) at each solver step, with Rabault's beta = 0.1 per 5e-4 time
  units converted to this solver's step;
- observation: the pressure (p - p_outflow) / (rho U^2) at probes, bilinearly interpolated:
  ``probes="rabault"`` (151 probes: a 9 x 7 grid in the wake from 0.25 D to 4 D behind the
  cylinder, 4 x 4 above and below it, two rings of 36 at 0.2 D and 0.4 D from its surface)
  or ``probes="cheap"`` (9: a 3 x 3 grid at 0.25, 1 and 3 D behind it, y = -D, 0, D);
- reward: -<C_D> - 0.2 |<C_L>| over the action interval, C = 2 F / (rho U^2 D) with F the
  force by momentum exchange, plus ``drag_offset`` (default 0): a constant, which leaves the
  best policy as it is, set to the uncontrolled mean C_D keeps the value targets near zero.
  ``infos`` carries ``drag_coefficient`` and ``lift_coefficient`` (float32 [N], the means
  over the interval);
- time: one env step is ``control_dt`` (default 0.025, Rabault's) of physical time; episodes
  last ``max_episode_steps`` (default 80, 2 time units or about six shedding periods).

Episodes start from a developed shedding state: the first env of a given ``resolution`` runs
the uncontrolled flow from rest for ``develop_time`` (minutes at the default resolution), keeps ``phases`` states
spread over one shedding period, and caches them in ``cache_dir`` (default
$XDG_CACHE_HOME/rlfarm/cylinder, else ~/.cache/rlfarm/cylinder). Each reset picks one of
them from the copy's seeded stream, so copies start at different phases of the shedding.

``render()`` gives copy 0's vorticity, blue (clockwise) to red, the cylinder in grey.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from gymnasium import spaces

from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.checks import check_int, check_number
from rlfarm.envs.lbm import CENTRE, DIAMETER, HEIGHT, CylinderChannel
from rlfarm.envs.single import SingleEnvView

PROBE_LAYOUTS = ("rabault", "cheap")
RABAULT_DT, RABAULT_BETA = 5e-4, 0.1
CACHE_VERSION = 1


def probe_positions(layout: str) -> np.ndarray:
    """float64 [P, 2]: (x, y) of the probes, physical units (see the module docstring)."""
    d, (cx, cy) = DIAMETER, CENTRE
    points = []
    if layout == "rabault":
        for dx in (0.25, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4):
            points += [(cx + d / 2 + dx * d, cy + dy * d) for dy in (-1.5, -1, -0.5, 0, 0.5, 1, 1.5)]
        for dx in (-0.25, 0, 0.25, 0.5):
            points += [(cx + dx * d, cy + dy * d) for dy in (-1.5, -1, 1, 1.5)]
        for gap in (0.2, 0.4):
            angles = np.arange(36) * (2 * np.pi / 36)
            radius = d / 2 + gap * d
            points += list(zip(cx + radius * np.cos(angles), cy + radius * np.sin(angles)))
    else:
        for dx in (0.25, 1, 3):
            points += [(cx + d / 2 + dx * d, cy + dy * d) for dy in (-1, 0, 1)]
    return np.array(points, dtype=np.float64)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rlfarm" / "cylinder"


def developed_states(resolution: int, u_lattice: float, phases: int, cache_dir: Path,
                     develop_time: float = 8.0) -> np.ndarray:
    """float32 [phases, 9, ny, nx]: uncontrolled shedding states spread over one period.

    Made once per (resolution, u_lattice, phases) and cached; the run starts from rest, kicks
    the wake with the jets for 0.2 time units so that shedding starts early, and lets it
    settle for ``develop_time`` time units before it measures the lift's period.
    """
    name = f"developed_r{resolution}_u{u_lattice:g}_k{phases}_t{develop_time:g}_v{CACHE_VERSION}.npy"
    path = Path(cache_dir) / name
    if path.exists():
        return np.load(path)
    print(f"CylinderJets: making the developed shedding state at resolution {resolution} "
          f"(once; cached in {path})", file=sys.stderr, flush=True)
    lattice = CylinderChannel(1, resolution=resolution, u_lattice=u_lattice)
    scale = 2 / (lattice.u_lattice ** 2 * resolution)  # lattice force -> coefficient
    kick = 0.03 * inflow_rate_across_cylinder() * rate_per_unit(lattice)  # half Rabault's bound
    for step in range(round(develop_time / lattice.dt)):
        lattice.step(np.array([kick if step * lattice.dt < 0.2 else 0.0]))
    lift = np.array([lattice.step(np.zeros(1))[0, 1] * scale for _ in range(round(1.0 / lattice.dt))])
    period_steps = shedding_period_steps(lift)
    states = np.empty((phases,) + lattice.f.shape[:1] + lattice.f.shape[2:], np.float32)
    for k in range(phases):
        states[k] = lattice.f[:, 0]
        for _ in range(period_steps // phases):
            lattice.step(np.zeros(1))
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(scratch, states)
    os.replace(scratch, path)  # atomic: runners that make it at once all read a whole file
    return states


def shedding_period_steps(lift: np.ndarray) -> int:
    """The mean spacing of the upward zero crossings of the lift's fluctuation, in samples."""
    s = lift - lift.mean()
    up = np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0))
    if len(up) < 2:
        raise RuntimeError("CylinderJets: the uncontrolled wake did not shed; no period to sample")
    return round((up[-1] - up[0]) / (len(up) - 1))


def rate_per_unit(lattice: CylinderChannel) -> float:
    """Lattice jet rate (mass per step) per unit physical flow rate (area per time, rho = 1)."""
    return lattice.dt / lattice.dx ** 2


def inflow_rate_across_cylinder() -> float:
    """Q_ref: the parabolic inflow's flow rate between y = 0.15 and 0.25 (U = 1 mean)."""
    h, lo, hi = HEIGHT, CENTRE[1] - DIAMETER / 2, CENTRE[1] + DIAMETER / 2

    def primitive(y):  # of the parabola 6 y (h - y) / h^2
        return 6 / h ** 2 * (h * y ** 2 / 2 - y ** 3 / 3)

    return primitive(hi) - primitive(lo)


class CylinderJetsBatched(BatchedEnv):
    """N cylinder wakes with two jets each (see the module docstring)."""

    reset_draws = 1
    bench_num_envs = (1, 8)
    """`rlfarm bench`'s batch sizes for this env (each copy holds ~2 MB per 10k cells)."""

    def __init__(self, num_envs: int = 1, *, resolution: int = 20, u_lattice: float = 0.05,
                 control_dt: float = 0.025, max_jet: float = 0.06, probes: str = "rabault",
                 lift_penalty: float = 0.2, drag_offset: float = 0.0, phases: int = 16,
                 cache_dir: str | None = None, develop_time: float = 8.0, max_episode_steps: int = 80,
                 autoreset_mode: str = "next_step", runner_index: int = 0, render_mode: str | None = None):
        check_int("resolution", resolution, 8)
        check_int("phases", phases, 1)
        for name, value in (("u_lattice", u_lattice), ("control_dt", control_dt), ("max_jet", max_jet)):
            check_number(name, value, positive=True)
        check_number("lift_penalty", lift_penalty)
        check_number("drag_offset", drag_offset)
        check_number("develop_time", develop_time, positive=True)
        if u_lattice > 0.1:
            raise ValueError(f"u_lattice: at most 0.1 (the Mach number grows with it), got {u_lattice}")
        if probes not in PROBE_LAYOUTS:
            raise ValueError(f"probes: expected one of {PROBE_LAYOUTS}, got {probes!r}")
        self.positions = probe_positions(probes)
        obs_space = spaces.Box(-np.inf, np.inf, shape=(len(self.positions),), dtype=np.float32)
        act_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        super().__init__(num_envs, obs_space, act_space, max_episode_steps=max_episode_steps,
                         autoreset_mode=autoreset_mode, runner_index=runner_index, render_mode=render_mode)
        self.lattice = lattice = CylinderChannel(self.num_envs, resolution=resolution, u_lattice=u_lattice)
        self.resolution, self.u_lattice, self.probes, self.phases = resolution, u_lattice, probes, phases
        self.develop_time = develop_time
        self.substeps = max(1, round(control_dt / lattice.dt))
        self.control_dt = self.substeps * lattice.dt
        """Physical time per env step (``control_dt`` rounded to whole solver steps)."""
        self.lattice_updates_per_step = self.substeps * lattice.nx * lattice.ny
        """Cell updates per copy per env step, for MLUPS (`rlfarm bench`)."""
        self.max_jet, self.lift_penalty, self.drag_offset = max_jet, lift_penalty, drag_offset
        self.jet_rate_max = max_jet * inflow_rate_across_cylinder()  # physical flow rate at |a| = 1
        self._to_lattice_rate = rate_per_unit(lattice)
        self._beta = 1 - (1 - RABAULT_BETA) ** (lattice.dt / RABAULT_DT)
        self._force_scale = 2 / (u_lattice ** 2 * resolution)
        self._pressure_scale = 1 / (3 * u_lattice ** 2)
        self._probe_index, self._probe_weight = self._bilinear(self.positions)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._states: np.ndarray | None = None  # the developed states, loaded at the first reset
        self.jet_rate = np.zeros(self.num_envs)  # the smoothed top-jet flow rate Q_s, physical units
        self.drag = np.zeros(self.num_envs, np.float32)
        self.lift = np.zeros(self.num_envs, np.float32)

    def _bilinear(self, points: np.ndarray):
        """Flat cell indices [P, 4] and weights [P, 4] of each probe's four surrounding cells."""
        lat = self.lattice
        gx, gy = points[:, 0] / lat.dx - 0.5, points[:, 1] / lat.dx - 0.5
        ix, iy = np.floor(gx).astype(int), np.floor(gy).astype(int)
        fx, fy = gx - ix, gy - iy
        index = np.stack([iy * lat.nx + ix, iy * lat.nx + ix + 1, (iy + 1) * lat.nx + ix,
                          (iy + 1) * lat.nx + ix + 1], axis=1)
        weight = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
        if lat.solid.reshape(-1)[index].any():
            raise ValueError(f"resolution: {lat.resolution} is too coarse for the probes next to the cylinder")
        return index, weight

    # ------------------------------------------------------------ BatchedEnv
    def _reset_copies(self, copies, unit):
        if self._states is None:
            self._states = developed_states(self.resolution, self.u_lattice, self.phases, self.cache_dir,
                                            self.develop_time)
        phase = np.minimum((unit[:, 0] * self.phases).astype(int), self.phases - 1)
        self.lattice.f[:, copies] = self._states[phase].transpose(1, 0, 2, 3)
        self.jet_rate[copies] = 0.0

    def _observe(self, copies):
        n = self.num_envs
        f = self.lattice.f.reshape(9, n, -1)
        if copies is not self._all_copies:
            f = f[:, copies]
        rho = f[:, :, self._probe_index].sum(axis=0, dtype=np.float64)  # [n, P, 4]
        pressure = np.einsum("npk,pk->np", rho, self._probe_weight)
        pressure -= 1.0
        pressure *= self._pressure_scale
        return pressure.astype(np.float32)

    def _physics(self, actions):
        target = actions[:, 0].astype(np.float64) * self.jet_rate_max
        force = np.zeros((self.num_envs, 2))
        lattice, beta, to_lattice = self.lattice, self._beta, self._to_lattice_rate
        for _ in range(self.substeps):
            self.jet_rate += beta * (target - self.jet_rate)
            force += lattice.step(self.jet_rate * to_lattice)
        force *= self._force_scale / self.substeps
        self.drag[:] = force[:, 0]
        self.lift[:] = force[:, 1]
        rewards = (self.drag_offset - force[:, 0] - self.lift_penalty * np.abs(force[:, 1])).astype(np.float32)
        bad = ~np.isfinite(rewards)
        if bad.any():
            self._bad_copies = np.flatnonzero(bad)
            rewards[bad] = 0.0
        return self._observe(self._all_copies), rewards, np.zeros(self.num_envs, dtype=bool)

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = super().step(actions)
        infos["drag_coefficient"] = self.drag.copy()
        infos["lift_coefficient"] = self.lift.copy()
        return obs, rewards, terminated, truncated, infos

    # ------------------------------------------------------------ pictures
    def vorticity(self, copy: int = 0) -> np.ndarray:
        """float64 [ny, nx]: copy's vorticity in units of U / D (row 0 at the bottom wall)."""
        _, ux, uy = self.lattice.moments(slice(copy, copy + 1))
        omega = np.gradient(uy[0], axis=1) - np.gradient(ux[0], axis=0)
        omega *= self.resolution / self.u_lattice
        omega[self.lattice.solid] = 0.0
        return omega

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return vorticity_image(self.vorticity(0), self.lattice.solid, scale=max(1, 40 // self.resolution))


def vorticity_image(omega: np.ndarray, solid: np.ndarray, limit: float = 10.0, scale: int = 1) -> np.ndarray:
    """uint8 [ny * scale, nx * scale, 3], the top wall at the top: blue (-limit) to white to red."""
    level = np.clip(omega / limit, -1.0, 1.0)[::-1]
    red = np.where(level > 0, 1.0, 1.0 + level)
    blue = np.where(level < 0, 1.0, 1.0 - level)
    image = 255 * np.stack([red, 1.0 - np.abs(level), blue], axis=-1)
    image[solid[::-1]] = 128
    image = image.astype(np.uint8)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


class CylinderJetsEnv(SingleEnvView):
    """One wake, what `gymnasium.make("rlfarm/CylinderJets-v0")` returns."""

    batched_cls = CylinderJetsBatched
