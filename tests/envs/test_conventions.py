"""The conventions every rlfarm env follows: spaces, seeding, autoreset, infos, actions, registry."""
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from rlfarm import envs
from rlfarm.envs import conventions
from rlfarm.envs.cartpole import CartPoleBatched
from rlfarm.envs.pendulum import PendulumBatched

IDS = envs.registered_ids()


def test_all_five_envs_are_registered():
    assert IDS == ["rlfarm/CartPole-v1", "rlfarm/Pendulum-v1", "rlfarm/HeatControl-v0",
                   "rlfarm/KuramotoSivashinsky-v0", "rlfarm/CylinderJets-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_single_env_view_passes_check_env(env_id, cheap_kwargs):
    env = gym.make(env_id, **cheap_kwargs(env_id))
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs in env.observation_space
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and isinstance(terminated, bool)


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_and_envs_make_give_the_batched_env(env_id, cheap_kwargs):
    vec = gym.make_vec(env_id, num_envs=8, vectorization_mode="vector_entry_point", **cheap_kwargs(env_id))
    assert isinstance(vec.unwrapped, envs.BatchedEnv) and vec.num_envs == 8
    env = envs.make(env_id, 8, seed=0, **cheap_kwargs(env_id))
    assert isinstance(env, envs.BatchedEnv) and env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("env_id", IDS)
def test_every_builtin_env_passes_the_conventions_checks(env_id, cheap_kwargs):
    """dtypes and shapes, both autoreset modes, seeding (same seed bit-identical, other seeds
    and runners differ), infos["episode"], bad actions raising ValueError, check_env."""
    results = conventions.check(env_id, num_envs=4, kwargs=cheap_kwargs(env_id))
    assert [r.name for r in results] == [*conventions.CHECKS, "check_env"]
    assert [r for r in results if not r.ok] == []


def test_every_copy_has_its_own_stream_independent_of_batch_size():
    small, large = CartPoleBatched(4), CartPoleBatched(64)
    obs_small, _ = small.reset(seed=5)
    obs_large, _ = large.reset(seed=5)
    np.testing.assert_array_equal(obs_small, obs_large[:4])
    assert len(np.unique(obs_large[:, 0])) == 64  # no two copies share a draw


def test_envs_make_seed_seeds_the_first_reset():
    first = envs.make("rlfarm/CartPole-v1", 8, seed=11).reset()[0]
    again = envs.make("rlfarm/CartPole-v1", 8, seed=11).reset()[0]
    np.testing.assert_array_equal(first, again)


def _tip_over(env, copy=0):
    env.state[:, copy] = [2.39, 5.0, 0.0, 0.0]  # the cart leaves the track at the next step


def test_next_step_autoreset_like_gymnasium():
    env = CartPoleBatched(3, autoreset_mode="next_step")
    env.reset(seed=0)
    env.step(np.zeros(3, dtype=np.int64))
    _tip_over(env)
    obs, rewards, terminated, truncated, infos = env.step(np.ones(3, dtype=np.int64))
    assert terminated[0] and not truncated[0] and obs[0, 0] > 2.4  # the final obs
    assert infos["_episode"].tolist() == [True, False, False]
    assert infos["episode"]["r"][0] == 2.0 and infos["episode"]["l"][0] == 2
    obs, rewards, terminated, truncated, infos = env.step(np.ones(3, dtype=np.int64))
    assert np.all(np.abs(obs[0]) <= 0.05)  # the reset obs, with reward 0 and no ending
    assert rewards[0] == 0.0 and not terminated[0] and not truncated[0]
    assert rewards[1] == 1.0 and not infos["_episode"].any()
    obs, rewards, *_ , infos = env.step(np.ones(3, dtype=np.int64))
    assert rewards[0] == 1.0


def test_same_step_autoreset_gives_dense_final_obs():
    env = CartPoleBatched(3, autoreset_mode="same_step")
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    env.reset(seed=0)
    obs, _, _, _, infos = env.step(np.zeros(3, dtype=np.int64))
    assert infos["final_obs"].shape == (3, 4) and not infos["_final_obs"].any()
    _tip_over(env, copy=1)
    obs, rewards, terminated, truncated, infos = env.step(np.ones(3, dtype=np.int64))
    assert terminated.tolist() == [False, True, False] and rewards[1] == 1.0
    assert infos["final_obs"].dtype == np.float32 and infos["_final_obs"].tolist() == [False, True, False]
    assert infos["final_obs"][1, 0] > 2.4 and np.all(np.abs(obs[1]) <= 0.05)
    assert infos["episode"]["l"][1] == 2


def test_truncation_is_not_termination():
    env = PendulumBatched(2, max_episode_steps=3, autoreset_mode="same_step")
    env.reset(seed=0)
    for _ in range(3):
        obs, _, terminated, truncated, infos = env.step(np.zeros((2, 1), np.float32))
    assert truncated.all() and not terminated.any() and infos["_final_obs"].all()
    assert infos["episode"]["l"].tolist() == [3, 3]
    assert not np.array_equal(infos["final_obs"], obs)


@pytest.mark.parametrize("actions, got", [
    (np.zeros(4, dtype=np.int64), "got an array of the wrong shape"),
    (np.zeros(3, dtype=np.float32), "got an array of the wrong dtype"),
    (np.array([0, 1, 2]), "got the value 2"),
    (np.array([0, -1, 1]), "got the value -1"),
    (np.array([0, 1, 7], dtype=np.uint8), "got the value 7"),
])
def test_bad_discrete_actions_raise_with_expected_and_got(actions, got):
    env = CartPoleBatched(3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^actions: expected an integer array of shape \(3,\) "
                                         r"with values in \[0, 1\], " + got) as err:
        env.step(actions)
    assert f"shape {actions.shape}" in str(err.value)


@pytest.mark.parametrize("actions, got", [
    (np.array([[0.0], [np.nan]], np.float32), "got NaN"),
    (np.zeros((2, 2), np.float32), "got an array of the wrong shape"),
    (np.zeros(2, np.float32), "got an array of the wrong shape"),
    (np.zeros((2, 1), bool), "got an array of the wrong dtype"),
])
def test_bad_box_actions_raise_with_expected_and_got(actions, got):
    env = PendulumBatched(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^actions: expected a float array of shape \(2, 1\) without NaN, " + got):
        env.step(actions)


def test_box_actions_out_of_bounds_are_clipped():
    outcomes = []
    for torque in (2.0, 50.0, 1.0):
        env = PendulumBatched(2)
        env.reset(seed=0)
        outcomes.append(env.step(np.full((2, 1), torque, np.float32))[:2])
    np.testing.assert_array_equal(outcomes[0][0], outcomes[1][0])  # 50 acts as 2
    np.testing.assert_array_equal(outcomes[0][1], outcomes[1][1])  # and costs as 2
    assert not np.array_equal(outcomes[0][0], outcomes[2][0])


def test_a_seed_sequence_seeds_like_its_spawn_key():
    def first_obs(seed, runner_index=0):
        return CartPoleBatched(8, runner_index=runner_index).reset(seed=seed)[0]

    root = np.random.SeedSequence(1234)
    np.testing.assert_array_equal(first_obs(root), first_obs(np.random.SeedSequence(1234)))
    child_a, child_b = root.spawn(2)
    assert not np.array_equal(first_obs(child_a), first_obs(child_b))
    assert not np.array_equal(first_obs(root), first_obs(root, runner_index=1))
    with pytest.raises(ValueError, match="^seed: expected a non-negative int"):
        first_obs(-1)


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        CartPoleBatched(2).step(np.zeros(2, dtype=np.int64))


def test_make_rejects_unknown_ids_and_keywords_with_the_choices():
    with pytest.raises(ValueError, match=r"^env_id: unknown env 'rlfarm/NoSuchEnv-v0'; rlfarm ids: .*rlfarm/CartPole-v1"):
        envs.make("rlfarm/NoSuchEnv-v0", 4)
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) \['grid_sise'\]; accepted: .*grid_size"):
        envs.make("rlfarm/HeatControl-v0", 4, grid_sise=8)
    with pytest.raises(ValueError, match="^autoreset_mode: expected one of"):
        envs.make("rlfarm/CartPole-v1", 4, autoreset_mode="sometimes")


@pytest.mark.parametrize("env_id, num_envs, kwargs, message", [
    ("rlfarm/CartPole-v1", 0, {}, "num_envs: expected an int >= 1, got 0"),
    ("rlfarm/CartPole-v1", 2.0, {}, "num_envs: expected an int >= 1, got 2.0"),
    ("rlfarm/CartPole-v1", 2, {"max_episode_steps": True}, "max_episode_steps: expected an int >= 1"),
    ("rlfarm/CartPole-v1", 2, {"runner_index": -1}, "runner_index: expected an int >= 0, got -1"),
    ("Acrobot-v1", 2, {"runner_index": -1}, "runner_index: expected an int >= 0, got -1"),
    ("rlfarm/Pendulum-v1", 2, {"g": "x"}, "g: expected a positive number, got 'x'"),
    ("rlfarm/HeatControl-v0", 2, {"alpha": "x"}, "alpha: expected a positive number"),
    ("rlfarm/HeatControl-v0", 2, {"energy_cost": None}, "energy_cost: expected a finite number"),
    ("rlfarm/HeatControl-v0", 2, {"grid_size": 2}, "grid_size: expected an int >= 3"),
    ("rlfarm/HeatControl-v0", 2, {"boundary": "open"}, "boundary: expected one of"),
    ("rlfarm/KuramotoSivashinsky-v0", 2, {"dt": 0}, "dt: expected a positive number"),
    ("rlfarm/KuramotoSivashinsky-v0", 2, {"num_sensors": 100}, "grid_points: expected an even int >= num_sensors"),
])
def test_bad_keyword_values_name_the_keyword(env_id, num_envs, kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        envs.make(env_id, num_envs, **kwargs)


def test_env_config_defaults_and_validation():
    cfg = envs.EnvConfig()
    assert (cfg.id, cfg.envs_per_runner, cfg.kwargs, cfg.vectorization) == \
        ("rlfarm/CartPole-v1", 1024, {}, "sync")
    with pytest.raises(ValueError, match="env.envs_per_runner"):
        envs.EnvConfig(envs_per_runner=0)
    with pytest.raises(ValueError, match="env.vectorization"):
        envs.EnvConfig(vectorization="threads")


@pytest.mark.parametrize("env_id", IDS)
def test_render_gives_an_rgb_array(env_id, cheap_kwargs):
    env = envs.make(env_id, 2, render_mode="rgb_array", **cheap_kwargs(env_id))
    env.reset(seed=0)
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1  # a picture, not a blank canvas
    assert envs.make(env_id, 2, **cheap_kwargs(env_id)).render() is None  # no render_mode: no picture
