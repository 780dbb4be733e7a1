"""Our CartPole and Pendulum against gymnasium's own single envs, step by step."""
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from rlfarm.envs.cartpole import CartPoleBatched
from rlfarm.envs.pendulum import PendulumBatched

STEPS = 10_000


def test_cartpole_matches_gymnasium_over_10k_steps():
    ours = CartPoleBatched(1, autoreset_mode="same_step")
    ref = CartPoleEnv()
    obs, _ = ours.reset(seed=0)
    ref.reset(seed=0)
    rng = np.random.default_rng(0)
    episodes = terminations = 0
    for t in range(STEPS):
        action = int(rng.integers(2))
        # states set equal before each step: our float32 arithmetic must give gymnasium's
        # float64 step to float32 precision (free-running, the two drift apart as any two
        # float precisions do on a pole that falls over)
        ref.state = ours.state[:, 0].astype(np.float64)
        obs, reward, terminated, truncated, infos = ours.step(np.array([action]))
        ref_obs, ref_reward, ref_terminated, _, _ = ref.step(action)
        ours_obs = infos["final_obs"][0] if infos["_final_obs"][0] else obs[0]
        np.testing.assert_allclose(ours_obs, ref_obs, rtol=2e-6, atol=1e-6, err_msg=f"step {t}")
        assert bool(terminated[0]) == bool(ref_terminated), f"step {t}"
        assert reward[0] == ref_reward
        if terminated[0] or truncated[0]:
            episodes += 1
            terminations += bool(terminated[0])
            assert np.all(np.abs(obs[0]) <= 0.05)  # the reset obs, drawn like gymnasium's
            ref.reset()
    assert episodes > 100 and terminations == episodes  # random play never reaches 500 steps


def test_cartpole_truncates_at_500_steps():
    env = CartPoleBatched(2)
    env.reset(seed=0)
    for t in range(1, 501):
        env.state[:] = 0.0  # hold the pole upright, so only the time limit ends the episode
        _, _, terminated, truncated, infos = env.step(np.array([0, 1]))
        assert not terminated.any()
        assert truncated.all() == (t == 500)
    assert list(infos["episode"]["l"]) == [500, 500] and list(infos["episode"]["r"]) == [500.0, 500.0]


def test_pendulum_matches_gymnasium_over_10k_steps():
    ours = PendulumBatched(1, autoreset_mode="same_step")
    ref = PendulumEnv()
    obs, _ = ours.reset(seed=0)
    ref.reset(seed=0)
    ref.state = ours.state[:, 0].copy()
    rng = np.random.default_rng(1)
    episodes = 0
    for t in range(STEPS):
        torque = rng.uniform(-2.5, 2.5, size=(1,)).astype(np.float32)  # some out of bounds: clipped
        obs, reward, terminated, truncated, infos = ours.step(torque[None])
        ref_obs, ref_reward, _, _, _ = ref.step(torque)
        ours_obs = infos["final_obs"][0] if infos["_final_obs"][0] else obs[0]
        np.testing.assert_allclose(ours_obs, ref_obs, rtol=1e-6, atol=1e-6, err_msg=f"step {t}")
        np.testing.assert_allclose(reward[0], ref_reward, rtol=1e-6, atol=1e-6)
        assert not terminated[0]
        if truncated[0]:
            episodes += 1
            assert (t + 1) % 200 == 0
            ref.reset()
            ref.state = ours.state[:, 0].copy()
    assert episodes == STEPS // 200
