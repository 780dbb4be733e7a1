"""Sampling throughput through the Ray farm, and through RLlib on the same env, for `rlfarm bench --farm`.

Ours: the RayFarm's runner actors sample with policy inference; every fragment's ref is
delivered to the learner actor, which receives it from the object store and discards it.
The count is env steps delivered to the learner process per second of wall time.
Deliveries are grouped as a training batch groups fragments: one learner call per fragment
from each runner, sooner only where waiting would leave a runner with nothing to sample
(`deliver_now`). Each Ray call costs CPU the runners share on a small machine: grouping cut
the learner's CPU with 2 runners by a third (0.06 to 0.04 of a core).

Where the embedded Ray runs as this process's descendants (cluster/proc_cpu.py), the report
also accounts for the CPU the whole farm used over the window: the runners' sampling (their
main thread's CPU inside `Runner.sample`) and the rest, Ray's work per fragment in every
process (the fragment into the store and out again, the calls, the driver and the learner).
That second figure, per fragment, is what a fragment costs beyond its sampling; with as many
runners as cores it comes out of the runners' CPU, which is what limits scaling on a small
machine.

RLlib's: PPO's env runners (same number of runners, envs per runner and fragment length)
sample through `synchronous_parallel_sample`, the call PPO's training step makes; no
learner update. Both run on the same Ray with the same env id.
"""
from __future__ import annotations

import time
from typing import Any

import ray

from rlfarm.cluster.proc_cpu import SessionCpu
from rlfarm.cluster.ray_farm import RayFarm


def farm_sampling(env_cfg: Any, policy_cfg: Any, algo_cfg: Any, farm_cfg: Any, seed: int,
                  seconds: float, warmup_s: float = 2.0) -> dict[str, float]:
    """Env steps/s delivered to the learner actor (which discards them)."""
    farm = RayFarm(env_cfg, policy_cfg, algo_cfg, farm_cfg, seed, total_env_steps=None)
    try:
        return _deliver_loop(farm, seconds, warmup_s)
    finally:
        farm.close()


def _deliver_loop(farm: RayFarm, seconds: float, warmup_s: float) -> dict[str, float]:
    pool, learner = farm.pool, farm.learners[0]
    consumes: dict[Any, list] = {}  # consume future -> the requests it delivers
    undelivered: list = []  # arrived, not yet passed to the learner
    steps = fragments = deliveries = 0
    fragment_bytes = 0
    env_ms = inference_ms = rows = 0.0
    max_store_mb, max_inflight = 0.0, 0
    started = time.perf_counter()
    measure_from, end = started + warmup_s, started + warmup_s + seconds
    measuring = False
    cpu_window, sampling_cpu_ms, sampled = None, 0.0, 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if not measuring and now >= measure_from:
            measuring, measure_from = True, now
            steps = fragments = deliveries = 0
            cpu_window = SessionCpu.start()
        pool.top_up(farm.version, farm.weights_ref)
        max_inflight = max(max_inflight, pool.inflight())
        waiting = list(pool.pending) + list(consumes)
        if not ray.wait(waiting, num_returns=1, timeout=end - now)[0]:
            continue
        ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)  # all that are there
        arrivals = pool.collect(ready)  # the receipts among them are not requests: skipped
        undelivered += arrivals
        sampling = {request.runner_index for request in pool.pending.values()}
        if undelivered and deliver_now(len(undelivered), len(pool.actors), sampling):
            consumes[learner.consume.remote(*[request.fragment_ref for request in undelivered])] = undelivered
            undelivered = []
        if measuring:
            env_ms += sum(request.meta.env_ms for request in arrivals)
            inference_ms += sum(request.meta.inference_ms for request in arrivals)
            rows += sum(request.meta.horizon for request in arrivals)
            sampling_cpu_ms += sum(request.meta.sample_cpu_ms for request in arrivals)
            sampled += len(arrivals)
        done = [ref for ref in ready if ref in consumes]
        for ref, delivered in zip(done, ray.get(done) if done else []):  # the learner's receipts: counts, not data
            pool.release(consumes.pop(ref))
            if measuring:
                steps += delivered["steps"]
                fragments += delivered["fragments"]
                deliveries += 1
                fragment_bytes = delivered["bytes"] / max(delivered["fragments"], 1)
        if measuring:
            max_store_mb = max(max_store_mb, farm.object_store_stats()["used_mb"])
    elapsed = time.perf_counter() - measure_from
    used = cpu_window.stop() if cpu_window is not None else None
    return {
        "env_steps_per_s": steps / elapsed,
        "seconds": elapsed,
        "env_steps": steps,
        "fragments": fragments,
        "fragment_mb": fragment_bytes / 1e6,
        "env_step_ms": env_ms / max(rows, 1),
        "inference_ms": inference_ms / max(rows, 1),
        "object_store_max_mb": max_store_mb,
        "max_inflight_seen": max_inflight,
        "fragments_per_delivery": fragments / max(deliveries, 1),
        **_cpu_accounting(used, pool.pids(), elapsed, sampling_cpu_ms, sampled),
    }


def _cpu_accounting(used: dict[str, float] | None, runner_pids: list[int], elapsed: float,
                    sampling_cpu_ms: float, sampled: int) -> dict[str, float]:
    """Cores the farm's processes used (`used`: CPU seconds per pid over the window), and CPU
    ms per fragment sampled in it: the runners' sampling, and everything else (Ray's)."""
    if used is None or sampled == 0:
        return {}
    all_s = sum(used.values())
    runners_s = sum(used.get(str(pid), 0.0) for pid in runner_pids)
    return {"cpu_cores": all_s / elapsed, "runner_cores": runners_s / elapsed,
            "sampling_cpu_ms_per_fragment": sampling_cpu_ms / sampled,
            "ray_cpu_ms_per_fragment": (1000.0 * all_s - sampling_cpu_ms) / sampled}


def deliver_now(waiting: int, num_runners: int, sampling: set[int]) -> bool:
    """Pass the `waiting` fragments to the learner now, or wait for more?

    Now once there is one per runner, or when a runner has no request left to work on
    (`sampling` holds the runners with one in progress): its free slot comes only from a
    consumed fragment, so waiting longer would leave it idle.
    """
    return waiting >= num_runners or len(sampling) < num_runners


def rllib_sampling(env_id: str, num_runners: int, envs_per_runner: int, fragment_length: int,
                   seconds: float, address: str | None = None) -> dict[str, float]:
    """RLlib PPO env runners sampling `env_id`: env steps/s of `synchronous_parallel_sample`."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
    from ray.tune.registry import register_env

    from rlfarm.cluster.ray_session import start_ray

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
