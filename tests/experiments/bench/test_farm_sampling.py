"""`rlfarm bench --farm`'s measurement: fragments sampled by the runners reach the learner actor
through the farm's `sampling_stream()` hook."""
from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray")

from rlfarm.experiments.bench.farm_sampling import farm_sampling  # noqa: E402


@pytest.mark.slow
def test_farm_sampling_counts_what_the_learner_received(ray_local, cartpole):
    env_cfg, policy_cfg, algo_cfg, farm_cfg = cartpole(algo="appo", envs_per_runner=128, max_inflight=2)
    report = farm_sampling(env_cfg, policy_cfg, algo_cfg, farm_cfg, seed=0, seconds=2.0, warmup_s=0.5)
    steps_per_fragment = 128 * 32
    assert report["fragments"] >= 2
    assert report["env_steps"] == report["fragments"] * steps_per_fragment
    assert report["env_steps_per_s"] == pytest.approx(report["env_steps"] / report["seconds"])
    assert 1.9 <= report["seconds"] <= 4.0
    assert report["max_inflight_seen"] <= 2 * 2  # runners x max_inflight
    assert 1.0 <= report["fragments_per_delivery"] <= 2 * 2
    assert report["fragment_mb"] > 0 and report["env_step_ms"] > 0 and report["inference_ms"] > 0
    # the store never held more than the live fragments plus Ray's own small objects
    assert report["object_store_max_mb"] <= 4 * report["fragment_mb"] + 10.0
    # CPU accounting (the fixture's Ray runs below this process): the runners are part of the
    # farm's CPU, their sampling part of theirs, and Ray's work per fragment is not nothing
    assert 0 < report["runner_cores"] <= report["cpu_cores"] <= os.cpu_count() + 0.1
    sampling_cores = report["sampling_cpu_ms_per_fragment"] * report["fragments"] / report["seconds"] / 1000
    assert 0 < sampling_cores <= report["runner_cores"] * 1.25 + 0.05  # slack: fragments at the window's edges
    assert report["ray_cpu_ms_per_fragment"] > 0

