"""HeatControl physics: the analytic decay of the first mode, conservation, stability, control."""
import numpy as np
import pytest

from rlfarm.envs.heat import HeatControlBatched

METHODS = ["matrix", "stencil"]


@pytest.mark.parametrize("method", METHODS)
def test_first_mode_decays_as_the_analytic_solution(method):
    """u = sin(pi x) sin(pi y), u = 0 on the edge, heaters off: u(t) = exp(-2 pi^2 alpha t) u(0)."""
    alpha, steps = 0.5, 40
    env = HeatControlBatched(2, grid_size=16, alpha=alpha, control_dt=0.0025, dt=1e-4, method=method)
    env.reset(seed=0)
    x, y = np.meshgrid(env.coords, env.coords, indexing="ij")
    mode = np.sin(np.pi * x) * np.sin(np.pi * y)
    env.temperature[:] = mode
    for _ in range(steps):
        env.step(np.zeros((2, 4), np.float32))
    t = steps * env.control_dt
    expected = np.exp(-2 * np.pi ** 2 * alpha * t)  # 0.37: a full e-fold
    amplitude = (env.temperature[0] * mode).sum() / (mode * mode).sum()
    assert abs(amplitude / expected - 1) < 0.01
    np.testing.assert_allclose(env.temperature[0], amplitude * mode, atol=1e-3 * expected)


@pytest.mark.parametrize("method", METHODS)
def test_insulated_plate_conserves_heat(method):
    env = HeatControlBatched(3, grid_size=12, boundary="insulated", method=method)
    env.reset(seed=0)
    env.temperature[:] = np.random.default_rng(0).uniform(0, 2, size=(3, 12, 12))
    before = env.temperature.sum(axis=(1, 2), dtype=np.float64)
    for _ in range(150):
        env.step(np.zeros((3, 4), np.float32))
    after = env.temperature.sum(axis=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(after, before, rtol=2e-5)  # float32 state, 150 x substeps updates
    assert env.temperature.std() < 0.1 * 0.58  # and it did diffuse towards uniform


def test_heaters_add_exactly_their_energy_on_an_insulated_plate():
    env = HeatControlBatched(2, grid_size=10, boundary="insulated", heater_gain=5.0)
    env.reset(seed=0)
    power = np.array([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]], np.float32)
    env.step(power)
    patch_area = env.patches.sum(axis=(1, 2))  # nodes per heater
    expected = (power * patch_area).sum(axis=1) * env.heater_gain * env.control_dt
    np.testing.assert_allclose(env.temperature.sum(axis=(1, 2)), expected, rtol=1e-5)


def test_reward_is_minus_tracking_error_minus_energy_cost():
    env = HeatControlBatched(3, grid_size=8, energy_cost=0.3)
    env.reset(seed=4)
    power = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0.2, 0.9, 0.0, 0.5]], np.float32)
    for _ in range(3):
        obs, rewards, *_ = env.step(power)
    temperature, target = obs[:, 0].astype(np.float64), obs[:, 1].astype(np.float64)
    assert np.abs(temperature).max() > 0.01 and np.abs(target).max() > 0.3  # both fields matter
    expected = -((temperature - target) ** 2).mean(axis=(1, 2)) - 0.3 * power.mean(axis=1)
    np.testing.assert_allclose(rewards, expected, rtol=1e-5)


def test_each_episode_draws_its_own_target():
    env = HeatControlBatched(2, grid_size=8, max_episode_steps=2, autoreset_mode="same_step")
    first = env.reset(seed=0)[0][:, 1].copy()
    assert not np.array_equal(first[0], first[1])
    for _ in range(2):
        obs, *_ = env.step(np.zeros((2, 4), np.float32))
    assert not np.array_equal(obs[:, 1], first)  # the second episodes track new targets
    assert np.all(obs[:, 0] == 0)  # and start cold


def test_matrix_and_stencil_agree():
    runs = []
    for method in METHODS:
        env = HeatControlBatched(4, grid_size=10, method=method)
        env.reset(seed=3)
        rng = np.random.default_rng(0)
        for _ in range(20):
            obs, rewards, *_ = env.step(rng.uniform(0, 1, (4, 4)).astype(np.float32))
        runs.append((obs, rewards))
    np.testing.assert_allclose(runs[0][0], runs[1][0], atol=1e-5)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-4)


def test_a_time_step_beyond_the_stability_limit_is_refused():
    with pytest.raises(ValueError, match=r"stability limit .*dx\^2/\(4 alpha\) = 0.000865"):
        HeatControlBatched(1, grid_size=16, dt=1e-3)
    env = HeatControlBatched(1, grid_size=16)  # without dt, the env substeps under the limit
    assert env.dt <= env.dx ** 2 / (4 * env.alpha) and env.substeps * env.dt == pytest.approx(env.control_dt)


def test_proportional_controller_beats_zero_action():
    def episode_return(policy):
        env = HeatControlBatched(16)
        env.reset(seed=1)
        total = np.zeros(16)
        for _ in range(200):
            _, rewards, _, truncated, _ = env.step(policy(env))
            total += rewards
        assert truncated.all()  # 200-step episodes
        return total.mean()

    def proportional(env, gain=5.0):
        obs = np.stack([env.temperature, env.target], axis=1)
        return env.proportional_action(obs, gain)

    zero = episode_return(lambda env: np.zeros((16, 4), np.float32))
    controlled = episode_return(proportional)
    assert controlled > zero + 0.5 * abs(zero)
