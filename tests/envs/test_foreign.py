"""envs.make on gymnasium ids that are not ours: the adapter gives rlfarm's conventions."""
import gymnasium as gym
import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs.adapters import ForeignVectorEnv


class CrashAtStep3(gym.Env):
    """A toy env whose step raises on its third step of every episode."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2), {}

    def step(self, action):
        self.t += 1
        if self.t == 3:
            raise RuntimeError("simulator crashed")
        return np.full(2, 0.5), 1.0, False, False, {}


gym.register("rlfarm_test/CrashAtStep3-v0", entry_point=CrashAtStep3)


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_acrobot_behind_the_adapter(vectorization):
    env = envs.make("Acrobot-v1", 3, seed=0, vectorization=vectorization)
    try:
        assert isinstance(env, ForeignVectorEnv)
        obs, _ = env.reset()
        assert obs.dtype == np.float32 and obs.shape == (3, 6)
        obs, rewards, terminated, truncated, infos = env.step(np.zeros(3, dtype=np.int64))
        assert obs.dtype == np.float32 and rewards.dtype == np.float32
        assert infos["_episode"].shape == (3,) and infos["episode"]["r"].dtype == np.float32
    finally:
        env.close()


def test_gymnasium_cartpole_episode_stats_and_dense_final_obs():
    env = envs.make("CartPole-v1", 4, seed=1, autoreset_mode="same_step")
    env.reset()
    lengths, returns = [], []
    for _ in range(200):
        obs, rewards, terminated, truncated, infos = env.step(np.ones(4, dtype=np.int64))
        assert infos["final_obs"].dtype == np.float32 and infos["final_obs"].shape == (4, 4)
        done = terminated | truncated
        np.testing.assert_array_equal(infos["_final_obs"], done)
        if done.any():
            assert np.all(np.abs(infos["final_obs"][done, 2]) > 0.2)  # the pole fell in the final obs
            assert np.all(np.abs(obs[done]) <= 0.05)  # the reset obs
            lengths += infos["episode"]["l"][done].tolist()
            returns += infos["episode"]["r"][done].tolist()
    assert len(lengths) > 20 and lengths == [int(r) for r in returns]  # reward 1 per step


def test_next_step_mode_counts_episodes_like_ours():
    env = envs.make("CartPole-v1", 2, seed=1)
    env.reset()
    ended = []
    for _ in range(100):
        _, _, _, _, infos = env.step(np.ones(2, dtype=np.int64))
        ended += infos["episode"]["l"][infos["_episode"]].tolist()
    assert len(ended) > 5 and all(8 <= length <= 20 for length in ended)


@pytest.mark.parametrize("autoreset_mode", ["next_step", "same_step"])
def test_a_crashing_copy_is_reset_and_counted(autoreset_mode):
    env = envs.make("rlfarm_test/CrashAtStep3-v0", 2, seed=0, autoreset_mode=autoreset_mode)
    env.reset()
    errors = []
    for _ in range(4):
        obs, rewards, terminated, truncated, infos = env.step(np.zeros(2, dtype=np.int64))
        errors.append(infos.get("env_errors", 0))
    assert errors == [0, 0, 2, 0]


def test_seeds_differ_per_copy_and_runner():
    def first_obs(runner_index):
        env = envs.make("Acrobot-v1", 3, seed=4, runner_index=runner_index)
        obs, _ = env.reset()
        env.close()
        return obs

    a, b, c = first_obs(0), first_obs(0), first_obs(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and len(np.unique(a[:, 0])) == 3


def test_unsupported_observation_space_is_refused():
    with pytest.raises(ValueError, match="Box observation space"):
        envs.make("FrozenLake-v1", 2)


@pytest.mark.parametrize("actions, got", [
    (np.array([0, 3, 1]), "got the value 3"),
    (np.array([0.0, 1.0, 1.0]), "got an array of the wrong dtype"),
    (np.zeros(2, dtype=np.int64), "got an array of the wrong shape"),
])
def test_bad_actions_raise_instead_of_counting_as_env_errors(actions, got):
    env = envs.make("Acrobot-v1", 3, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"^actions: expected an integer array of shape \(3,\) with values in \[0, 2\], "
                                         + got):
        env.step(actions)


def test_box_actions_are_clipped_for_foreign_envs_too():
    env = envs.make("Pendulum-v1", 2, seed=0)
    obs = []
    for torque in (2.0, 40.0):
        env.reset(seed=0)
        obs.append(env.step(np.full((2, 1), torque, np.float32))[0])
    np.testing.assert_array_equal(obs[0], obs[1])
    with pytest.raises(ValueError, match="got NaN"):
        env.step(np.full((2, 1), np.nan, np.float32))


def test_bad_keyword_for_a_foreign_id_names_it():
    with pytest.raises(ValueError, match=r"^CartPole-v1: bad keyword arguments \['bogus'\]"):
        envs.make("CartPole-v1", 2, bogus=1)


def test_a_seed_sequence_seeds_foreign_envs():
    def first_obs(seed):
        env = envs.make("Acrobot-v1", 3)
        obs, _ = env.reset(seed=seed)
        env.close()
        return obs

    a, b = np.random.SeedSequence(9).spawn(2)
    np.testing.assert_array_equal(first_obs(np.random.SeedSequence(9)), first_obs(np.random.SeedSequence(9)))
    assert not np.array_equal(first_obs(a), first_obs(b))
