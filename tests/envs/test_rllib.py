"""RLlib trains on our batched CartPole through gymnasium's vector_entry_point."""
import pytest

from rlfarm import envs  # noqa: F401  (registers rlfarm/CartPole-v1 in this process, where the env runner lives)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_rllib_ppo_runs_one_iteration_on_rlfarm_cartpole(local_ray):
    from ray.rllib.algorithms.ppo import PPOConfig

    config = (
        PPOConfig()
        .environment("rlfarm/CartPole-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=16,
                     gym_env_vectorize_mode="vector_entry_point", rollout_fragment_length=32)
        .training(train_batch_size_per_learner=512, minibatch_size=128, num_epochs=1)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        env = algo.env_runner.env.unwrapped
        assert type(env).__name__ == "CartPoleBatched" and env.num_envs == 16
        result = algo.train()
    finally:
        algo.stop()
    sampled = result["env_runners"]["num_env_steps_sampled_lifetime"]
    assert sampled >= 512
    assert result["env_runners"]["episode_return_mean"] > 0
