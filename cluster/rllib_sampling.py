"""RLlib's PPO sampling on an env id, the yardstick of `rlfarm bench --farm --vs-rllib`.

PPO's env runners (the given runners, envs per runner and fragment length) sample through
`synchronous_parallel_sample`, the call PPO's training step makes; no learner update. It
lives here because it drives Ray's own API (and `import ray` belongs to this package); the
benchmark in experiments/bench/ calls it on the same Ray and env id as the farm's figure.
"""
from __future__ import annotations

import time
from typing import Any

from rlfarm.cluster.ray_session import start_ray


def rllib_sampling(env_id: str, num_runners: int, envs_per_runner: int, fragment_length: int,
                   seconds: float, address: str | None = None) -> dict[str, float]:
    """RLlib PPO env runners sampling `env_id`: env steps/s of `synchronous_parallel_sample`."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
    from ray.tune.registry import register_env

    def make_env(_config: dict) -> Any:
        import gymnasium as gym

        from rlfarm import envs  # noqa: F401 - registers rlfarm/... ids in the env runner's process

        return gym.make(env_id)

    session = start_ray(address)
    register_env("rlfarm-bench-env", make_env)
    batch = num_runners * envs_per_runner * fragment_length
    config = (PPOConfig()
              .environment("rlfarm-bench-env")
              .env_runners(num_env_runners=num_runners, num_envs_per_env_runner=envs_per_runner,
                           rollout_fragment_length=fragment_length, num_cpus_per_env_runner=1)
              .training(train_batch_size=batch, minibatch_size=min(batch, 4096), num_epochs=1)
              .debugging(log_level="ERROR"))
    algo = config.build_algo() if hasattr(config, "build_algo") else config.build()
    try:
        def sample() -> int:
            episodes = synchronous_parallel_sample(worker_set=algo.env_runner_group, max_env_steps=batch,
                                                   _uses_new_env_runners=True)
            return sum(len(episode) for episode in episodes)

        sample()  # warm-up: env creation, first forward passes
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            steps += sample()
        elapsed = time.perf_counter() - started
    finally:
        algo.stop()
        session.close()
    return {"env_steps_per_s": steps / elapsed, "seconds": elapsed, "env_steps": steps}
