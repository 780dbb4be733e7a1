"""A long-ish APPO run through the Ray farm: no object spilling, a bounded and flat store, flat RSS."""
from __future__ import annotations

import math
import statistics
import time

import pytest

ray = pytest.importorskip("ray")

from rlfarm.cluster.ray_farm import RayFarm  # noqa: E402

SOAK_S = 150.0


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
    assert len(samples) >= 100, f"only {len(samples)} iterations in {SOAK_S} s"
    assert store["spilled_mb"] == 0 and store["spilled_objects"] == 0
    # The gauge reads on a background thread: NaN until its first reading, then readings.
    read = [(t, r) for t, r in samples if math.isfinite(r["perf/object_store_mb"])]
    assert len(read) >= len(samples) // 2, "the object-store gauge gave few readings"
    assert all(r["perf/object_store_spilled_mb"] == 0 for _, r in read)
    fragment_mb = samples[-1][1]["perf/fragment_mb"]
    live_mb = runners * max_inflight * fragment_mb  # what backpressure lets exist at once
    store_mb = [(t, r["perf/object_store_mb"]) for t, r in read]
    # Absolute: the store also holds weights and Ray's own objects, and plasma frees memory a
    # little after the last reference goes; a leak of one fragment per iteration would pass
    # this bound within a few dozen of the hundreds of iterations.
    assert max(mb for _, mb in store_mb) <= 8 * live_mb + 20.0, store_mb[::10]
    # Flat: the last third of the run holds no more than the first third did.
    first = max(mb for t, mb in store_mb if t < SOAK_S / 3)
    last = max(mb for t, mb in store_mb if t >= 2 * SOAK_S / 3)
    assert last <= first + live_mb, f"object store grew from {first:.1f} MB to {last:.1f} MB"
    assert max(r["perf/inflight_fragments_max"] for _, r in samples) <= runners * max_inflight

    # RSS: each actor's median reading over the last third of the run against its median over
    # the second sixth (after warm-up). A single reading swings by tens of MB with where it
    # falls between the learner's heap trims (343-418 MB within one local run, no trend); a
    # leak raises the median: one leaked set of weights (37 KB) per update would add ~57 MB
    # between the two windows (~1,600 updates apart).
    def median_reading(key: str, since_s: float, until_s: float) -> float:
        return statistics.median(r[key] for t, r in samples if since_s < t <= until_s and key in r)

    keys = {k for _, r in samples for k in r if k.startswith("system/rss_mb/")}
    assert {"system/rss_mb/driver", "system/rss_mb/learner_0", "system/rss_mb/runner_1"} <= keys
    for key in sorted(keys):
        warm, end = median_reading(key, SOAK_S / 6, SOAK_S / 3), median_reading(key, 2 * SOAK_S / 3, SOAK_S)
        assert end - warm <= max(30.0, 0.10 * warm), f"{key}: median {warm:.0f} -> {end:.0f} MB"
    last = samples[-1][1]
    assert last["runner_restarts"] == 0
