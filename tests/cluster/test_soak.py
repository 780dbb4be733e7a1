"""A long-ish APPO run through the Ray farm: no object spilling, bounded store, flat RSS."""
from __future__ import annotations

import time

import pytest

ray = pytest.importorskip("ray")

from cluster.ray_farm import RayFarm  # noqa: E402

SOAK_S = 90.0


@pytest.mark.slow
def test_soak_no_spilling_and_flat_rss(ray_local, cartpole):
    runners, max_inflight = 2, 2
    cfgs = cartpole(algo="appo", envs_per_runner=256, num_runners=runners, max_inflight=max_inflight,
                    algo_fields={"epochs": 1, "minibatches": 2})
    farm = RayFarm(*cfgs, seed=9, total_env_steps=None)
    samples: list[tuple[float, dict]] = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < SOAK_S:
            result = farm.iterate()
            samples.append((time.monotonic() - started, result))
        store = farm.object_store_stats(force=True)
    finally:
        farm.close()
    assert len(samples) >= 20, f"only {len(samples)} iterations in {SOAK_S} s"
    assert store["spilled_mb"] == 0 and store["spilled_objects"] == 0
    assert all(r["perf/object_store_spilled_mb"] == 0 for _, r in samples)
    fragment_mb = samples[-1][1]["perf/fragment_mb"]
    # Live fragments are bounded by runners x max_inflight; Ray frees plasma memory a little
    # after the last reference goes, hence the factor of 4.
    bound_mb = 4 * runners * max_inflight * fragment_mb + 10.0
    assert max(r["perf/object_store_mb"] for _, r in samples) <= bound_mb
    assert max(r["perf/inflight_fragments_max"] for _, r in samples) <= runners * max_inflight

    # RSS: compare the last third of the run with the end of the first third (after warm-up).
    warm = [r for t, r in samples if t >= SOAK_S / 3][0]
    last = samples[-1][1]
    for key in [k for k in last if k.startswith("system/rss_mb/")]:
        growth = last[key] - warm[key]
        assert growth <= max(30.0, 0.10 * warm[key]), f"{key}: {warm[key]:.0f} -> {last[key]:.0f} MB"
    assert last["runner_restarts"] == 0
