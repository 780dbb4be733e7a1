"""Kuramoto-Sivashinsky: ETDRK4 against an independent RK4 reference, boundedness, NaN handling."""
import numpy as np
import pytest

from rlfarm.envs.ks import KuramotoSivashinskyBatched


def rk4_reference(u0: np.ndarray, length: float, t_end: float, dt: float = 2e-4) -> np.ndarray:
    """Classical RK4 on the Fourier-space ODE v' = (k^2 - k^4) v - (ik/2) F[u^2], tiny steps."""
    n = u0.shape[-1]
    k = 2 * np.pi / length * np.fft.rfftfreq(n, d=1.0 / n)
    k_odd = k.copy()
    k_odd[-1] = 0.0
    linear = k ** 2 - k ** 4

    def rhs(v):
        u = np.fft.irfft(v, n=n)
        return linear * v - 0.5j * k_odd * np.fft.rfft(u * u)

    v = np.fft.rfft(u0)
    for _ in range(round(t_end / dt)):
        a = rhs(v)
        b = rhs(v + 0.5 * dt * a)
        c = rhs(v + 0.5 * dt * b)
        d = rhs(v + dt * c)
        v = v + dt / 6 * (a + 2 * b + 2 * c + d)
    return np.fft.irfft(v, n=n)


@pytest.mark.slow
def test_unforced_etdrk4_matches_rk4_reference():
    """Tolerance: 1e-5 of max|u| after 5 time units (ETDRK4 at dt = 0.05 is ~1e-7 here)."""
    env = KuramotoSivashinskyBatched(2)
    env.reset(seed=0)
    x = env.x
    u0 = np.stack([np.cos(2 * np.pi * x / 22) * (1 + np.sin(2 * np.pi * x / 22)),
                   0.5 * np.sin(4 * np.pi * x / 22) - 0.3 * np.cos(6 * np.pi * x / 22)])
    env.set_state(u0)
    for _ in range(4):  # 4 actions x 5 substeps x 0.05 = 1 time unit
        env.step(np.zeros((2, 4), np.float32))
    reference = np.stack([rk4_reference(u, 22.0, 1.0) for u in u0])
    assert np.abs(reference - u0).max() > 0.1  # the field did evolve
    np.testing.assert_allclose(env.u, reference, atol=1e-5 * np.abs(reference).max())


@pytest.mark.slow
def test_state_stays_bounded_over_long_forced_runs():
    env = KuramotoSivashinskyBatched(8)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    peak, errors = 0.0, 0
    for _ in range(1000):  # 250 time units, 5 episodes per copy
        _, rewards, _, _, infos = env.step(rng.uniform(-1, 1, (8, 4)).astype(np.float32))
        errors += infos.get("env_errors", 0)
        peak = max(peak, np.abs(env.u).max())
        assert np.isfinite(rewards).all()
    assert errors == 0 and 1.0 < peak < 10.0  # chaotic, but on the attractor (|u| ~ 3)


def test_nan_in_one_copy_resets_only_that_copy_and_is_counted():
    clean, broken = KuramotoSivashinskyBatched(4), KuramotoSivashinskyBatched(4)
    clean.reset(seed=2)
    broken.reset(seed=2)
    bad_field = clean.u[1]
    bad_field[5] = np.nan
    broken.set_state(bad_field[None], copies=[1])
    actions = np.zeros((4, 4), np.float32)
    obs_clean, rew_clean, _, trunc_clean, _ = clean.step(actions)
    obs, rewards, terminated, truncated, infos = broken.step(actions)
    assert infos["env_errors"] == 1
    assert np.isfinite(obs).all() and np.isfinite(rewards).all() and np.isfinite(broken.u).all()
    assert truncated.tolist() == [False, True, False, False] and not terminated.any()
    assert rewards[1] == 0.0 and not infos["_episode"][1]  # an error is not an episode
    keep = [0, 2, 3]
    np.testing.assert_array_equal(obs[keep], obs_clean[keep])
    np.testing.assert_array_equal(rewards[keep], rew_clean[keep])
    _, _, _, _, infos = broken.step(actions)
    assert "env_errors" not in infos


def test_reward_is_minus_dissipation_and_power():
    env = KuramotoSivashinskyBatched(1, substeps=1)
    env.reset(seed=0)
    actions = np.array([[0.5, -0.2, 0.0, 1.0]], np.float32)
    _, rewards, _, _, _ = env.step(actions)
    u = env.u[0]
    k = env.wavenumbers
    u_xx = np.fft.irfft(-(k ** 2) * np.fft.rfft(u), n=len(u))
    forcing = actions[0].astype(np.float64) @ env.actuator_shapes
    expected = -(np.mean(u_xx ** 2) + np.mean(u * forcing))
    np.testing.assert_allclose(rewards[0], expected, rtol=1e-5)
