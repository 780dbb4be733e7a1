"""CylinderJets: the lattice kernel's invariants, the jets, the env's contract, and (slow) the
Schäfer–Turek 2D-2 validation at the default resolution.

The fast tests run a coarse lattice (resolution 8) whose developed state is made once per
session in a temporary cache with a short development time: they check mechanics, not the
benchmark's numbers. The slow test checks the numbers.
"""
import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs.cylinder import (
    CylinderJetsBatched,
    developed_states,
    inflow_rate_across_cylinder,
    probe_positions,
    shedding_period_steps,
)
from rlfarm.envs.lbm import OPPOSITE, C, CylinderChannel, W, equilibrium

COARSE = {"resolution": 8, "develop_time": 1.5, "probes": "cheap"}


@pytest.fixture(scope="module")
def coarse(cheap_kwargs):
    """Keywords of a cheap env, its developed state cached once for the session (conftest.py)."""
    return {**COARSE, "cache_dir": cheap_kwargs("rlfarm/CylinderJets-v0")["cache_dir"]}


def test_lattice_constants_are_d2q9():
    assert W.sum() == pytest.approx(1.0)
    np.testing.assert_allclose((W[:, None] * C).sum(axis=0), 0, atol=1e-15)
    np.testing.assert_allclose(np.einsum("i,ia,ib->ab", W, C, C), np.eye(2) / 3)  # cs^2 = 1/3
    np.testing.assert_array_equal(C[OPPOSITE], -C)


def collide(lattice, f):
    lattice.f[:] = f
    lattice._collide(lattice.f, lattice._post)
    return lattice._post.copy()


def trt_pairwise(f, omega_plus, omega_minus):
    """TRT written direction pair by direction pair (Ginzburg et al. 2008), the reference for
    the solver's matrix form: the even half of (f_i, f_opp) relaxes at omega+, the odd at omega-."""
    rho = f.sum(axis=0)
    jx, jy = np.einsum("i...,i->...", f, C[:, 0]), np.einsum("i...,i->...", f, C[:, 1])
    feq = equilibrium(rho, jx / rho, jy / rho)
    neq = f - feq
    even, odd = (neq + neq[OPPOSITE]) / 2, (neq - neq[OPPOSITE]) / 2
    return f - omega_plus * even - omega_minus * odd


def test_collision_is_trt_keeps_mass_and_momentum_and_fixes_the_equilibrium():
    lattice = CylinderChannel(2, resolution=8, dtype=np.float64)
    rng = np.random.default_rng(0)
    shape = (2, lattice.ny, lattice.nx)
    eq = equilibrium(1 + 0.01 * rng.standard_normal(shape), 0.05 * rng.standard_normal(shape),
                     0.05 * rng.standard_normal(shape))
    np.testing.assert_allclose(collide(lattice, eq), eq, atol=1e-14)
    f = eq + 1e-3 * rng.standard_normal(eq.shape)
    after = collide(lattice, f)
    assert np.abs(after - f).max() > 1e-5  # it did relax
    np.testing.assert_allclose(after, trt_pairwise(f, lattice._omega_plus, lattice._omega_minus), atol=1e-13)
    np.testing.assert_allclose(after.sum(axis=0), f.sum(axis=0), atol=1e-13)
    np.testing.assert_allclose(np.einsum("i...,ia->a...", after, C), np.einsum("i...,ia->a...", f, C), atol=1e-13)


def test_jets_net_lattice_source_is_zero_to_round_off():
    for resolution in (8, 13, 20):
        lattice = CylinderChannel(1, resolution=resolution)
        top, bottom = lattice.jet_links == 1, lattice.jet_links == -1
        assert top.sum() >= 2 and bottom.sum() >= 2
        assert lattice.jet_source[top].sum() == pytest.approx(1.0, abs=1e-12)
        assert lattice.jet_source[bottom].sum() == pytest.approx(-1.0, abs=1e-12)
        assert abs(lattice.jet_source.sum()) < 1e-14
        angles = np.rad2deg(lattice.link_angle[top | bottom]) % 360
        assert np.all((np.abs(angles - 90) < 5) | (np.abs(angles - 270) < 5))  # 10 degrees wide


def test_jets_at_full_rate_leave_the_fluid_mass_as_it_was(coarse):
    """Over one action, max blowing/suction changes the fluid's mass by a tiny fraction of what
    one jet alone moves (Bouzidi's interpolation is not exactly conservative, the source is)."""
    masses = {}
    for action in (0.0, 1.0):
        env = CylinderJetsBatched(1, **coarse)
        env.reset(seed=0)
        env.step(np.array([[action]], np.float32))
        masses[action] = env.lattice.fluid_mass()[0]
        one_jet = env.jet_rate[0] * env._to_lattice_rate * env.substeps  # lattice mass one jet moved
    assert one_jet > 0.1
    assert abs(masses[1.0] - masses[0.0]) < 0.02 * one_jet


def test_fluid_mass_stays_put_in_the_developed_wake(coarse):
    env = CylinderJetsBatched(2, **coarse)
    env.reset(seed=1)
    start = env.lattice.fluid_mass()
    for _ in range(20):  # half a time unit, 1.5 shedding periods
        env.step(np.zeros((2, 1), np.float32))
    drift = np.abs(env.lattice.fluid_mass() / start - 1)
    assert np.all(drift < 1e-3)


def test_steady_channel_keeps_the_parabola():
    """With the cylinder taken out, walls, inflow and outflow hold the Poiseuille profile."""
    lattice = CylinderChannel(1, resolution=8, dtype=np.float64)
    lattice._cylinder = lambda f, g, rate: np.zeros((1, 2))
    lattice.solid[:] = False
    lattice._solid_cells = np.array([], dtype=int)
    lattice.initial_state(np.arange(1))
    for _ in range(500):
        lattice.step(np.zeros(1))
    _, ux, uy = lattice.moments()
    middle = ux[0, :, lattice.nx // 2]
    np.testing.assert_allclose(middle, lattice.inflow, atol=0.02 * lattice.u_lattice)
    assert np.abs(uy).max() < 0.01 * lattice.u_lattice


def test_env_contract_and_infos(coarse):
    env = envs.make("rlfarm/CylinderJets-v0", 3, seed=0, **coarse)
    obs, _ = env.reset()
    assert obs.shape == (3, 9) and obs.dtype == np.float32
    assert len(np.unique(obs[:, 0])) > 1  # seeded copies start at different phases
    actions = np.array([[1.0], [0.0], [-1.0]], np.float32)
    obs, rewards, _, _, infos = env.step(actions)
    drag, lift = infos["drag_coefficient"], infos["lift_coefficient"]
    assert drag.dtype == lift.dtype == np.float32 and drag.shape == (3,)
    assert np.all((drag > 2) & (drag < 6)) and np.all(np.abs(lift) < 4)  # a bluff body at Re = 100
    np.testing.assert_allclose(rewards, -drag - 0.2 * np.abs(lift), rtol=1e-5)
    assert env.unwrapped.control_dt == pytest.approx(env.unwrapped.substeps * env.unwrapped.lattice.dt)


def test_smoothing_follows_rabaults_rule(coarse):
    env = CylinderJetsBatched(1, **coarse)
    env.reset(seed=0)
    env.step(np.array([[0.5]], np.float32))
    beta = 1 - 0.9 ** (env.lattice.dt / 5e-4)
    target = 0.5 * env.max_jet * inflow_rate_across_cylinder()
    assert env.jet_rate[0] == pytest.approx(target * (1 - (1 - beta) ** env.substeps), rel=1e-9)


def test_probe_layouts_and_interpolation(coarse):
    assert probe_positions("rabault").shape == (151, 2) and probe_positions("cheap").shape == (9, 2)
    env = CylinderJetsBatched(1, **{**coarse, "probes": "rabault"})
    x, y = env.lattice.x, env.lattice.y
    slope = 1e-3 * (x[None, :] + 2 * y[:, None])  # a linear density field: bilinear is exact there
    env.lattice.f[:] = W[:, None, None, None] * (1 + slope)[None, None]
    pressure = env._observe(env._all_copies)[0]
    expected = 1e-3 * (env.positions[:, 0] + 2 * env.positions[:, 1]) * env._pressure_scale
    np.testing.assert_allclose(pressure, expected, rtol=1e-3)


def test_render_shows_a_two_signed_wake(coarse):
    env = CylinderJetsBatched(1, render_mode="rgb_array", **coarse)
    env.reset(seed=0)
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    omega = env.vorticity(0)
    wake = omega[:, env.lattice.x > 0.3]
    assert wake.max() > 0.5 and wake.min() < -0.5


def test_bad_keywords_name_the_field():
    for kwargs, field in (({"resolution": 3}, "resolution"), ({"probes": "many"}, "probes"),
                          ({"u_lattice": 0.3}, "u_lattice"), ({"control_dt": 0}, "control_dt")):
        with pytest.raises(ValueError, match=field):
            CylinderJetsBatched(1, **kwargs)


# ---------------------------------------------------------------- validation (slow)
REFERENCE = {"drag_max": (3.22, 3.24), "lift_max": (0.99, 1.01), "strouhal": (0.295, 0.305)}
"""Schäfer & Turek 1996, case 2D-2: the intervals of the benchmark's reference values."""


def uncontrolled_coefficients(resolution: int, duration: float, cache_dir=None):
    """C_D(t), C_L(t) (float64 [steps]) and the solver's dt, from the developed state."""
    kwargs = {"resolution": resolution} if cache_dir is None else {"resolution": resolution, "cache_dir": cache_dir}
    env = CylinderJetsBatched(1, **kwargs)
    env.reset(seed=0)
    lattice, scale = env.lattice, env._force_scale
    forces = np.array([lattice.step(np.zeros(1))[0] for _ in range(round(duration / lattice.dt))]) * scale
    return forces[:, 0], forces[:, 1], lattice.dt


def benchmark_values(drag, lift, dt):
    period = shedding_period_steps(lift) * dt
    return {"drag_max": drag.max(), "lift_max": lift.max(), "strouhal": 0.1 / period}  # St = f D / U


def within(value, interval, tolerance=0.05):
    low, high = interval
    return (1 - tolerance) * low <= value <= (1 + tolerance) * high


@pytest.mark.slow
def test_uncontrolled_wake_matches_schafer_turek_2d2():
    """At the default resolution, from the cached developed state (made on first use), over
    1.5 time units (about 4.5 shedding periods)."""
    resolution = CylinderJetsBatched(1).resolution
    values = benchmark_values(*uncontrolled_coefficients(resolution, 1.5))
    for name, interval in REFERENCE.items():
        assert within(values[name], interval), f"{name} = {values[name]:.4f}, reference {interval} +- 5%"


def test_developed_state_is_cached_and_reused(coarse):
    CylinderJetsBatched(1, **coarse).reset(seed=0)  # makes it, or finds the module's copy
    files = sorted(p.name for p in __import__("pathlib").Path(coarse["cache_dir"]).iterdir())
    assert len(files) == 1 and files[0].startswith("developed_r8_")
    first = developed_states(8, 0.05, 16, coarse["cache_dir"], develop_time=1.5)
    again = developed_states(8, 0.05, 16, coarse["cache_dir"], develop_time=1.5)
    np.testing.assert_array_equal(first, again)
    assert first.shape[0] == 16 and not np.array_equal(first[0], first[8])  # phases differ
