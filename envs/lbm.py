"""A D2Q9 lattice Boltzmann solver of the Schäfer–Turek channel with a cylinder, batched over copies.

Geometry (Schäfer & Turek 1996, "Benchmark computations of laminar flow around a cylinder",
case 2D-2): a channel 2.2 x 0.41, a cylinder of diameter D = 0.1 centred at (0.2, 0.2), a
parabolic inflow of mean velocity U = 1, nu = 1e-3 (Re = U D / nu = 100), no-slip walls.
Units: the solver works in lattice units (cell dx = D / resolution, rho = 1); ``u_lattice``
is the mean inflow velocity per step, so one step is dt = u_lattice * dx / U of physical time.

Scheme (Krüger et al., "The Lattice Boltzmann Method", Springer 2017, is the reference for each
piece):

- collision: two-relaxation-time (TRT, Ginzburg et al. 2008), which stays stable at tau close
  to 1/2 where BGK blows up; with a fixed magic parameter the wall's place under bounce-back
  does not depend on the viscosity;
- streaming: push, from the post-collision buffer back into the state [9, N, ny, nx]
  (direction-major, so that each direction's plane is one contiguous block and a shift is one
  slice copy for all copies);
- cylinder: Bouzidi, Firdaouss & Lallemand (Phys. Fluids 13, 2001) linearly interpolated
  bounce-back on the links that cross the circle, with the moving-wall term for the jets;
- channel walls: half-way bounce-back; inflow (the parabola) and outflow (rho = 1): Guo,
  Zheng & Shi's non-equilibrium extrapolation (Chinese Phys. 11, 2002); before the outflow
  an absorbing layer relaxes the density to 1, so that pressure waves from the start and from
  the shedding leave the channel instead of ringing between its ends (they shook C_D by
  +-0.1 without it);
- force on the cylinder: momentum exchange over the cut links (Ladd 1994; Mei et al. 2002).

Jets (Rabault et al. 2019, J. Fluid Mech. 865, arXiv 1808.07664): two arcs of width 10 degrees
at 90 and 270 degrees, radial velocity with a cosine profile across each arc, flow rates Q and
-Q. The lattice source of each jet is scaled so that it injects exactly its nominal flow rate,
so the two sum to zero up to round-off.
"""
from __future__ import annotations

import numpy as np

# D2Q9 velocities; OPPOSITE[i] is the direction with c = -c_i
C = np.array([(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1)])
W = np.array([4 / 9] + [1 / 9] * 4 + [1 / 36] * 4)
OPPOSITE = np.array([0, 3, 4, 1, 2, 7, 8, 5, 6])

LENGTH, HEIGHT, DIAMETER, CENTRE = 2.2, 0.41, 0.1, (0.2, 0.2)
BLOCK = 8192  # cells per collision block: its 24 float32 rows (~0.8 MB) fit a core's L2 cache
JET_ANGLES_DEG, JET_WIDTH_DEG = (90.0, 270.0), 10.0


def circle_links(mask_solid: np.ndarray, x: np.ndarray, y: np.ndarray, centre, radius: float, dx: float):
    """The links from a fluid node to a solid node of the circle.

    Returns direction i [L], fluid cell (row, col) [L, 2], q [L] (the wall's fraction of the
    link, in (0, 1]) and the wall point's angle [L] (radians from +x, counterclockwise).
    """
    ny, nx = mask_solid.shape
    rows, cols, dirs, qs = [], [], [], []
    for i in range(1, 9):
        cx, cy = C[i]
        target = np.zeros_like(mask_solid)
        target[max(0, -cy):ny - max(0, cy), max(0, -cx):nx - max(0, cx)] = \
            mask_solid[max(0, cy):ny + min(0, cy) or None, max(0, cx):nx + min(0, cx) or None]
        r, c = np.nonzero(target & ~mask_solid)
        # solve |p + t c_i dx - centre| = radius for the smallest t in (0, 1]
        px, py = x[c] - centre[0], y[r] - centre[1]
        dxv, dyv = cx * dx, cy * dx
        a = dxv * dxv + dyv * dyv
        b = 2 * (px * dxv + py * dyv)
        cc = px * px + py * py - radius * radius
        t = (-b - np.sqrt(b * b - 4 * a * cc)) / (2 * a)
        rows.append(r), cols.append(c), dirs.append(np.full(len(r), i)), qs.append(t)
    rows, cols, dirs, q = map(np.concatenate, (rows, cols, dirs, qs))
    wall_x = x[cols] + q * C[dirs, 0] * dx - centre[0]
    wall_y = y[rows] + q * C[dirs, 1] * dx - centre[1]
    return dirs, np.stack([rows, cols], axis=1), np.clip(q, 1e-6, 1.0), np.arctan2(wall_y, wall_x)


class CylinderChannel:
    """N copies of the lattice; ``step(jet_rates)`` advances all of them by one lattice step.

    State: ``f`` float [9, N, ny, nx]. ``resolution`` is cells per diameter; the channel then
    has nx = 22 resolution by ny = round(4.1 resolution) cells (centres at (i + 1/2) dx).
    """

    def __init__(self, num_copies: int, resolution: int = 20, u_lattice: float = 0.05,
                 reynolds: float = 100.0, magic: float = 0.01, sponge_length: float = 0.4,
                 sponge_rate: float = 0.05, dtype=np.float32):
        self.num_copies, self.resolution, self.u_lattice, self.reynolds = num_copies, resolution, u_lattice, reynolds
        self.dtype = np.dtype(dtype)
        self.dx = DIAMETER / resolution
        self.nx, self.ny = round(LENGTH / self.dx), round(HEIGHT / self.dx)
        self.dt = u_lattice * self.dx  # physical time per step, with U = 1
        self.nu = u_lattice * resolution / reynolds
        self.tau = 3 * self.nu + 0.5
        omega_plus = 1 / self.tau
        # TRT's magic parameter Lambda = (tau+ - 1/2)(tau- - 1/2). The textbook 1/4 puts tau- near
        # 9 at tau+ = 0.515, and the channel (Guo boundaries, walls) then grows an odd-even mode at
        # the inflow within a few hundred steps; a small Lambda relaxes the odd moments briskly.
        omega_minus = 1 / (0.5 + magic / (self.tau - 0.5))
        self._omega_plus, self._omega_minus = omega_plus, omega_minus
        self.x = (np.arange(self.nx) + 0.5) * self.dx
        self.y = (np.arange(self.ny) + 0.5) * self.dx
        X, Y = np.meshgrid(self.x, self.y)
        radius = DIAMETER / 2
        self.solid = (X - CENTRE[0]) ** 2 + (Y - CENTRE[1]) ** 2 < radius ** 2
        self.fluid_cells = int((~self.solid).sum())
        self._solid_cells = np.flatnonzero(self.solid)
        channel_height = self.ny * self.dx
        # the inflow: the parabola of mean u_lattice at the cell centres
        self.inflow = 6 * u_lattice * self.y * (channel_height - self.y) / channel_height ** 2
        # an absorbing layer before the outflow: density relaxes to 1 at a rate rising as x^2,
        # so that pressure waves leave instead of bouncing between the inflow and the outflow
        start = round((LENGTH - sponge_length) / self.dx)
        ramp = np.clip((self.x[start:] - self.x[start]) / max(sponge_length, 1e-12), 0, 1)
        self._sponge_start = start
        self._sponge_rate_neg = (-sponge_rate * ramp ** 2).astype(self.dtype)
        self._weights = W.astype(self.dtype)
        self._inflow_row = self.inflow.astype(self.dtype)[None, :]  # [1, ny], broadcast over copies
        self._build_links(radius)
        shape = (9, num_copies, self.ny, self.nx)
        cells = num_copies * self.ny * self.nx
        # the state f [9, N, ny, nx] lives in rows 0-8 of one [12, cells] array whose rows 9-11
        # take the collision's quadratic terms, so that the collision is one matrix product
        self._state = np.empty((12, cells), self.dtype)
        self.f = self._state[:9].reshape(shape)
        self._post = np.empty(shape, self.dtype)  # post-collision populations, streamed into f
        self._moments = np.empty((3, min(cells, BLOCK)), self.dtype)
        self._moment_matrix = np.stack([np.ones(9), C[:, 0], C[:, 1]]).astype(self.dtype)
        self._collision_matrix = trt_matrix(omega_plus, omega_minus).astype(self.dtype)
        self.initial_state(np.arange(num_copies))

    # --------------------------------------------------------------- geometry
    def _build_links(self, radius):
        dirs, cells, q, angle = circle_links(self.solid, self.x, self.y, CENTRE, radius, self.dx)
        self.link_dir, self.link_q, self.link_angle = dirs, q, angle
        self.link_cell = cells[:, 0] * self.nx + cells[:, 1]
        self.link_behind = (cells[:, 0] - C[dirs, 1]) * self.nx + cells[:, 1] - C[dirs, 0]
        if self.solid.reshape(-1)[self.link_behind].any():
            raise ValueError(f"resolution: {self.resolution} is too coarse for the cylinder's links")
        near = q < 0.5  # Bouzidi's two branches, written as one linear rule a f_i + b f_i(x - c_i) + c f_opp
        self.link_a = np.where(near, 2 * q, 1 / (2 * q))
        self.link_b = np.where(near, 1 - 2 * q, 0.0)
        self.link_c = np.where(near, 0.0, (2 * q - 1) / (2 * q))
        self.link_c_vec = C[dirs].astype(np.float64)
        # jets: the lattice source per unit flow rate on each link (moving-wall term, rho = 1)
        half = np.deg2rad(JET_WIDTH_DEG) / 2
        source = np.zeros(len(dirs))
        self.jet_links = np.zeros(len(dirs), np.int8)  # +1 top jet, -1 bottom jet, 0 none
        for sign, centre_deg in zip((1, -1), JET_ANGLES_DEG):
            offset = (angle - np.deg2rad(centre_deg) + np.pi) % (2 * np.pi) - np.pi
            on = np.abs(offset) < half
            profile = np.cos(np.pi * offset[on] / (2 * half))  # Rabault's cosine profile, radial
            normal = np.stack([np.cos(angle[on]), np.sin(angle[on])], axis=1)
            c_in = -C[dirs[on]]  # the incoming direction opposite(i)
            weight = np.where(q[on] < 0.5, 6.0, 3.0 / q[on]) * W[dirs[on]]
            raw = weight * profile * (c_in * normal).sum(axis=1)
            source[on] = sign * raw / raw.sum()  # each jet injects +-1 lattice mass per step per unit rate
            self.jet_links[on] = sign
        self.jet_source = source  # [L]; sums to 0 up to round-off
        self._mask_fluid = (~self.solid).astype(self.dtype)

    def initial_state(self, copies: np.ndarray) -> None:
        """The parabolic inflow everywhere in the fluid at rho = 1, at rest in the cylinder."""
        ux = np.where(self.solid, 0.0, self.inflow[:, None])
        self.f[:, copies] = equilibrium(np.ones_like(ux), ux, np.zeros_like(ux))[:, None].astype(self.dtype)

    # ------------------------------------------------------------------ step
    def step(self, jet_rate: np.ndarray) -> np.ndarray:
        """One lattice step for all copies; ``jet_rate`` [N] is the top jet's flow rate in lattice
        units (mass per step). Returns the force on the cylinder, float64 [N, 2], lattice units."""
        f, post = self.f, self._post
        self._collide(f, post)
        self._stream(post, f)
        forces = self._cylinder(post, f, jet_rate)
        # the cylinder's inside is no fluid: what streamed in is dropped, lest it grow unbounded
        f.reshape(9, self.num_copies, -1)[:, :, self._solid_cells] = self._weights[:, None, None]
        self._inflow_outflow(f)
        if self._sponge_rate_neg.size:
            self._absorb(f)
        return forces

    def _collide(self, f, post):
        """TRT as one matrix product over all cells: post = K [f; q], q = (jx^2, jy^2, jx jy) / rho.

        TRT relaxes f - feq through Omega = omega+ (I + P)/2 + omega- (I - P)/2 (P swaps each
        direction with its opposite), and feq is linear in f except for the three quadratic
        terms q, so post = (I - Omega + Omega E) f + Omega E_q q with E, E_q from feq's
        coefficients. Two small BLAS products and a few plane operations replace the ~60
        elementwise passes of the direction-by-direction form (tests/envs/test_cylinder.py
        checks the two agree).
        """
        state, post = self._state, post.reshape(9, -1)
        moment_matrix, collision_matrix = self._moment_matrix, self._collision_matrix
        for start in range(0, state.shape[1], BLOCK):  # blocks that stay in a core's cache
            block = slice(start, start + BLOCK)
            stop = min(start + BLOCK, state.shape[1]) - start
            moments = self._moments[:, :stop]
            np.matmul(moment_matrix, state[:9, block], out=moments)  # rho, jx, jy
            inv_rho, jx, jy = moments
            np.reciprocal(inv_rho, out=inv_rho)
            quadratic = state[9:, block]
            np.multiply(jx, jx, out=quadratic[0])
            np.multiply(jy, jy, out=quadratic[1])
            np.multiply(jx, jy, out=quadratic[2])
            quadratic *= inv_rho
            np.matmul(collision_matrix, state[:, block], out=post[:, block])

    def _stream(self, f, g):
        """Push each direction one cell from ``f`` (post-collision) into ``g``; what would leave
        through a channel wall comes back in the opposite direction (half-way bounce-back)."""
        g[0] = f[0]
        for i in range(1, 9):
            cx, cy = C[i]
            g[i][:, max(0, cy):self.ny + min(0, cy), max(0, cx):self.nx + min(0, cx)] = \
                f[i][:, max(0, -cy):self.ny - max(0, cy), max(0, -cx):self.nx - max(0, cx)]
        for i in (2, 5, 6):  # top wall, half-way: what leaves upward comes back down
            g[OPPOSITE[i]][:, -1, :] = f[i][:, -1, :]
        for i in (4, 7, 8):  # bottom wall
            g[OPPOSITE[i]][:, 0, :] = f[i][:, 0, :]

    def _cylinder(self, f, g, jet_rate):
        """Bouzidi's bounce-back on the cut links (f post-collision, g streamed) with the jets'
        source; returns the momentum exchanged with the cylinder, float64 [N, 2]."""
        n = self.num_copies
        flat_f, flat_g = f.reshape(9, n, -1), g.reshape(9, n, -1)
        d_own, cell = self.link_dir, self.link_cell
        f_own = flat_f[d_own, :, cell]  # [L, N]
        f_behind = flat_f[d_own, :, self.link_behind]
        f_opp = flat_f[OPPOSITE[d_own], :, cell]
        new = self.link_a[:, None] * f_own + self.link_b[:, None] * f_behind + self.link_c[:, None] * f_opp
        new += self.jet_source[:, None] * np.asarray(jet_rate, np.float64)[None, :]
        flat_g[OPPOSITE[d_own], :, cell] = new
        # momentum exchange: each link gives c_i (f_i out + f_opp back) to the cylinder
        exchange = f_own.astype(np.float64) + new
        return exchange.T @ self.link_c_vec  # [N, 2]

    def _inflow_outflow(self, g):
        """Guo's non-equilibrium extrapolation at both ends: the first column takes the parabola's
        velocity and the second column's density, the last column rho = 1 and the velocity of
        the one before; both keep their neighbour's non-equilibrium part."""
        col = g[:, :, :, 1]
        rho, ux, uy = column_moments(col)
        g[:, :, :, 0] = col + equilibrium(rho, self._inflow_row + 0 * ux, 0 * uy) - equilibrium(rho, ux, uy)
        col = g[:, :, :, -2]
        rho, ux, uy = column_moments(col)
        g[:, :, :, -1] = col + equilibrium(1.0 - rho, ux, uy)

    def _absorb(self, f):
        """The absorbing layer: f_i += rate (1 - rho) w_i, which pulls the density to 1 and
        leaves the momentum alone."""
        layer = f[:, :, :, self._sponge_start:]
        pull = layer.sum(axis=0)
        pull -= 1.0
        pull *= self._sponge_rate_neg
        layer += self._weights[:, None, None, None] * pull

    # --------------------------------------------------------------- fields
    def moments(self, copies=slice(None)):
        """rho, ux, uy, each [n, ny, nx] float64, lattice units."""
        f = self.f[:, copies].astype(np.float64)
        rho = f.sum(axis=0)
        ux = (f[1] + f[5] + f[8] - f[3] - f[6] - f[7]) / rho
        uy = (f[2] + f[5] + f[6] - f[4] - f[7] - f[8]) / rho
        return rho, ux, uy

    def fluid_mass(self) -> np.ndarray:
        """float64 [N]: the total mass in the fluid cells."""
        return np.einsum("knyx,yx->n", self.f, self._mask_fluid, dtype=np.float64)


def trt_matrix(omega_plus: float, omega_minus: float) -> np.ndarray:
    """float64 [9, 12]: the TRT collision as post = K [f; jx^2/rho; jy^2/rho; jx jy/rho].

    feq_i = w_i (rho + 3 c_i.j + 4.5 (c_i.j)^2/rho - 1.5 |j|^2/rho) = E f + E_q q."""
    swap = np.eye(9)[OPPOSITE]
    relax = omega_plus * (np.eye(9) + swap) / 2 + omega_minus * (np.eye(9) - swap) / 2
    linear = W[:, None] * (1 + 3 * C @ C.T)
    cx, cy = C[:, 0], C[:, 1]
    quadratic = W[:, None] * np.stack([4.5 * cx * cx - 1.5, 4.5 * cy * cy - 1.5, 9.0 * cx * cy], axis=1)
    return np.concatenate([np.eye(9) - relax + relax @ linear, relax @ quadratic], axis=1)


def column_moments(col):
    """rho, ux, uy of populations [9, ...]."""
    rho = col.sum(axis=0)
    ux = (col[1] + col[5] + col[8] - col[3] - col[6] - col[7]) / rho
    uy = (col[2] + col[5] + col[6] - col[4] - col[7] - col[8]) / rho
    return rho, ux, uy


def equilibrium(rho, ux, uy) -> np.ndarray:
    """[9, *shape] second-order Maxwell equilibrium (cs^2 = 1/3), in the dtype of ``ux``."""
    ux = np.asarray(ux)
    shape = (9,) + (1,) * ux.ndim
    cx, cy = (C[:, k].astype(ux.dtype).reshape(shape) for k in (0, 1))
    w = W.astype(ux.dtype).reshape(shape)
    cu = cx * ux
    cu += cy * uy
    cu *= 3
    out = 0.5 * cu
    out += 1
    out *= cu
    out += 1 - 1.5 * (ux * ux + uy * uy)
    out *= w
    out *= rho
    return out
