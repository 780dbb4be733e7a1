"""The learner sets the pace: at most num_runners x max_inflight fragments exist at once."""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from rlfarm.cluster.ray_farm import RayFarm  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["appo", "ppo"])
def test_fragments_in_flight_never_exceed_runners_times_max_inflight(ray_local, cartpole, algo):
    runners, max_inflight = 2, 3
    bound = runners * max_inflight
    # Runners sample 32 x 512 steps far faster than the learner updates on them, so without
    # backpressure fragments would pile up in the object store.
    cfgs = cartpole(algo=algo, envs_per_runner=512, num_runners=runners, max_inflight=max_inflight,
                    max_lag=100, algo_fields={"epochs": 2, "minibatches": 2})
    farm = RayFarm(*cfgs, seed=2, total_env_steps=None)
    seen, store_mb = [], []
    try:
        original_wait = farm.pool.wait_arrivals

        def instrumented_wait():  # the count right before every wait, i.e. at its highest
            seen.append(farm.pool.inflight())
            return original_wait()

        farm.pool.wait_arrivals = instrumented_wait
        for _ in range(8):
            result = farm.iterate()
            seen.append(result["perf/inflight_fragments"])
            store_mb.append(farm.object_store_stats(force=True)["used_mb"])
        fragment_mb = result["perf/fragment_mb"]
    finally:
        farm.close()
    assert max(seen) <= bound
    assert farm.max_inflight_seen <= bound
    if algo == "appo":
        assert max(seen) == bound  # runners ran ahead until the bound stopped them
    else:  # PPO asks only for what the batch needs: one fragment per runner here
        assert max(seen) == runners
    # The store holds the fragments in flight plus small objects; Ray frees plasma memory a
    # little after the last reference goes, hence the factor of 4. Without the bound, runners
    # (~20x faster than this learner) would leave well over 100 fragments behind in 8 updates.
    assert max(store_mb) <= 4 * bound * fragment_mb + 5.0, (store_mb, fragment_mb)
    assert result["perf/object_store_spilled_mb"] == 0
