"""Sampling throughput through the Ray farm, for `rlfarm bench --farm`.

The RayFarm's runner actors sample with policy inference; every fragment's reference is
delivered to the learner actor, which receives it from the object store and discards it
(`RayFarm.sampling_stream()`, cluster/sampling_stream.py). The count is env steps delivered
to the learner process per second of wall time.

Where the embedded Ray runs as this process's descendants (proc_cpu.py), the report also
accounts for the CPU the whole farm used over the window: the runners' sampling (their main
thread's CPU inside `Runner.sample`) and the rest, Ray's work per fragment in every process
(the fragment into the store and out again, the calls, the driver and the learner). That
second figure, per fragment, is what a fragment costs beyond its sampling; with as many
runners as cores it comes out of the runners' CPU, which is what limits scaling on a small
machine.
"""
from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING

from rlfarm.cluster.ray_farm import RayFarm
from rlfarm.experiments.bench.proc_cpu import SessionCpu

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.cluster.config import FarmConfig
    from rlfarm.envs.config import EnvConfig


def farm_sampling(env_cfg: EnvConfig, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, farm_cfg: FarmConfig, seed: int,
                  seconds: float, warmup_s: float = 2.0) -> dict[str, float]:
    """Env steps/s delivered to the learner actor (which discards them)."""
    farm = RayFarm(env_cfg, policy_cfg, algo_cfg, farm_cfg, seed, total_env_steps=None)
    try:
        return _measure(farm, seconds, warmup_s)
    finally:
        farm.close()


class _Tally(collections.Counter):
    """What the measurement window saw, as counts: steps and fragments the learner received,
    its deliveries, and the runners' sampled fragments with their env rows, env, inference
    and sampling-CPU milliseconds (one fragment's bytes and the store's peak are kept apart)."""

    fragment_bytes: float = 0.0
    max_store_mb: float = 0.0

    def add(self, arrived: list, delivered: list[dict[str, float]]) -> None:
        for meta in arrived:
            self.update(env_ms=meta.env_ms, inference_ms=meta.inference_ms, rows=meta.horizon,
                        sampling_cpu_ms=meta.sample_cpu_ms, sampled=1)
        for receipt in delivered:
            self.update(steps=receipt["steps"], fragments=receipt["fragments"], deliveries=1)
            self.fragment_bytes = receipt["bytes"] / max(receipt["fragments"], 1)


def _measure(farm: RayFarm, seconds: float, warmup_s: float) -> dict[str, float]:
    stream = farm.sampling_stream()
    started = time.perf_counter()
    measure_from, end = started + warmup_s, started + warmup_s + seconds
    tally, cpu_window, max_inflight = None, None, 0
    while (now := time.perf_counter()) < end:
        if tally is None and now >= measure_from:
            tally, measure_from, cpu_window = _Tally(), now, SessionCpu.start()
        # in the warm-up, wake at its end: the window starts then, not at the next event after it
        events = stream.poll(timeout_s=(measure_from if tally is None else end) - now)
        max_inflight = max(max_inflight, stream.inflight())
        if tally is not None:
            tally.add(events.arrived, events.delivered)
            tally.max_store_mb = max(tally.max_store_mb, farm.object_store_stats()["used_mb"])
    elapsed = time.perf_counter() - measure_from
    used = cpu_window.stop() if cpu_window is not None else None
    tally = tally or _Tally()
    return {
        "env_steps_per_s": tally["steps"] / elapsed,
        "seconds": elapsed,
        "env_steps": tally["steps"],
        "fragments": tally["fragments"],
        "fragment_mb": tally.fragment_bytes / 1e6,
        "env_step_ms": tally["env_ms"] / max(tally["rows"], 1),
        "inference_ms": tally["inference_ms"] / max(tally["rows"], 1),
        "object_store_max_mb": tally.max_store_mb,
        "max_inflight_seen": max_inflight,
        "fragments_per_delivery": tally["fragments"] / max(tally["deliveries"], 1),
        **_cpu_accounting(used, farm.runner_pids(), elapsed, tally["sampling_cpu_ms"], tally["sampled"]),
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
