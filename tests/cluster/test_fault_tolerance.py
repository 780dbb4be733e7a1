"""Runners die and come back on their seed stream; env errors are counted; a dead learner
ends the run with a message naming the last checkpoint."""
from __future__ import annotations

import os
import signal
import time

import pytest

ray = pytest.importorskip("ray")

from rlfarm.cluster.ray_farm import LearnerDiedError, RayFarm  # noqa: E402
from rlfarm.cluster.reaper import running  # noqa: E402
from rlfarm.cluster.runner_pool import RunnerRestartsExceeded  # noqa: E402


@pytest.mark.slow
def test_sigkilled_runner_is_replaced_and_the_run_completes(ray_with_faulty_envs, cartpole):
    max_inflight = 2
    farm = RayFarm(*cartpole(algo="appo", max_inflight=max_inflight), seed=3, total_env_steps=None)
    try:
        for _ in range(3):
            farm.iterate()
        old_pids = farm.pool.pids()
        os.kill(old_pids[0], signal.SIGKILL)
        # Runner 1 carries the run while the replacement starts (a second or so); go on
        # until the replacement has delivered, and at least 8 more updates.
        updates, replacement_delivered, deadline = 0, False, time.monotonic() + 120
        while (updates < 8 or not replacement_delivered) and time.monotonic() < deadline:
            result = farm.iterate()
            updates += 1
            replacement_delivered |= "system/rss_mb/runner_0" in result
        new_pids = farm.pool.pids()
    finally:
        farm.close()
    assert replacement_delivered, "the replacement of runner 0 delivered no fragment in 120 s"
    assert result["runner_restarts"] == 1
    assert result["perf/runner_restarts"] == 1
    assert 1 <= result["perf/lost_fragments"] <= max_inflight  # at most that runner's in-flight ones
    assert new_pids[0] != old_pids[0] and new_pids[1] == old_pids[1]
    assert result["env_steps"] == (3 + updates) * 2 * 32 * 64  # every update got a full batch


@pytest.mark.slow
def test_a_driver_busy_past_runner_timeout_s_does_not_replace_runners_that_delivered(ray_with_faulty_envs,
                                                                                    cartpole):
    """A long learner update or checkpoint holds the driver; the runners deliver meanwhile.
    Their fragments are there, uncollected: that is not silence (before: both replaced)."""
    farm = RayFarm(*cartpole(algo="appo", runner_timeout_s=2.0), seed=6, total_env_steps=None)
    try:
        farm.iterate()
        pids = farm.pool.pids()
        time.sleep(3 * 2.0 + 1.0)  # past the timeout, even with the start allowance
        result = farm.iterate()
        assert farm.pool.pids() == pids
    finally:
        farm.close()
    assert result["runner_timeouts"] == 0 and result["runner_restarts"] == 0


def _iterate(cfgs, seed: int, iterations: int) -> dict:
    """Run a Ray farm for `iterations` updates and return the last iterate() result."""
    farm = RayFarm(*cfgs, seed=seed, total_env_steps=None)
    try:
        for _ in range(iterations):
            result = farm.iterate()
    finally:
        farm.close()
    return result


@pytest.mark.slow
def test_restarts_are_capped(ray_with_faulty_envs, cartpole):
    farm = RayFarm(*cartpole(max_runner_restarts=0), seed=3, total_env_steps=None)
    try:
        farm.iterate()
        os.kill(farm.pool.pids()[1], signal.SIGKILL)
        with pytest.raises(RunnerRestartsExceeded, match="max_runner_restarts=0"):
            for _ in range(20):
                farm.iterate()
    finally:
        farm.close()


@pytest.mark.slow
def test_env_that_kills_its_runner_process_is_survived(ray_with_faulty_envs, cartpole, tmp_path):
    marker = tmp_path / "crashed-once"
    cfgs = cartpole(env_id="faulty_env:CrashingCartPole-v0", envs_per_runner=4, num_runners=2,
                    env_kwargs={"crash_at": 40, "marker": str(marker)})
    result = _iterate(cfgs, seed=5, iterations=6)
    assert marker.exists()
    assert result["runner_restarts"] == 1


@pytest.mark.slow
def test_env_raising_on_step_is_counted_not_fatal(ray_with_faulty_envs, cartpole):
    cfgs = cartpole(env_id="faulty_env:RaisingCartPole-v0", envs_per_runner=4, num_runners=2,
                    env_kwargs={"raise_at": 10})
    result = _iterate(cfgs, seed=5, iterations=3)
    # Each copy raises once, on its 10th step: 4 copies x 2 runners, all within the first fragment.
    assert result["env_errors"] == 8
    assert result["runner_restarts"] == 0
    assert result["env_steps"] == 3 * 2 * 32 * 4


@pytest.mark.slow
def test_dead_learner_ends_the_run_naming_the_last_checkpoint(ray_with_faulty_envs, cartpole, tmp_path):
    farm = RayFarm(*cartpole(), seed=3, total_env_steps=None)
    checkpoint = tmp_path / "ckpt-1.pt"
    try:
        farm.iterate()
        farm.save_checkpoint(str(checkpoint), {"note": "test"})
        assert checkpoint.exists()
        os.kill(farm.learner_pids()[0], signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(LearnerDiedError, match=str(checkpoint)):
            farm.iterate()
    finally:
        farm.close()


@pytest.mark.slow
def test_checkpoint_round_trip_restores_counters_and_weights(ray_with_faulty_envs, cartpole, tmp_path):
    import numpy as np

    cfgs = cartpole()
    checkpoint = tmp_path / "ckpt.pt"
    farm = RayFarm(*cfgs, seed=3, total_env_steps=None)
    try:
        for _ in range(2):
            farm.iterate()
        farm.save_checkpoint(str(checkpoint), {"note": "kept"})
        saved = ray.get(farm.weights_ref)
        steps = farm.env_steps
    finally:
        farm.close()
    farm = RayFarm(*cfgs, seed=4, total_env_steps=None)
    try:
        extra = farm.load_checkpoint(str(checkpoint))
        restored = ray.get(farm.weights_ref)
        assert extra["note"] == "kept"
        assert farm.env_steps == steps and farm.version == saved["version"]
        for name, value in saved["params"].items():
            np.testing.assert_array_equal(restored["params"][name], value)
        result = farm.iterate()  # runners pick up the restored weights; nothing stale is consumed
        assert result["env_steps"] == steps + 2 * 32 * 64
    finally:
        farm.close()


@pytest.mark.slow
def test_a_stopped_runner_is_replaced_after_runner_timeout_s(ray_with_faulty_envs, cartpole):
    # 10 s: the replacement gets 3x that to start and deliver (a new Ray worker, its imports,
    # 64 envs) before it could be judged silent too, on a loaded 2-core machine
    farm = RayFarm(*cartpole(algo="ppo", runner_timeout_s=10.0), seed=5, total_env_steps=None)
    stopped = None
    try:
        farm.iterate()
        stopped = farm.pool.pids()[0]
        os.kill(stopped, signal.SIGSTOP)
        deadline = time.monotonic() + 90
        while farm.runner_timeouts == 0 and time.monotonic() < deadline:
            result = farm.iterate()
        for _ in range(2):  # and the farm goes on, the replacement included
            result = farm.iterate()
        new_pids = farm.pool.pids()
    finally:
        if stopped is not None and running(stopped):
            os.kill(stopped, signal.SIGKILL)
        farm.close()
    assert result["runner_timeouts"] == 1 and result["runner_restarts"] == 1
    assert result["perf/runner_timeouts"] == 1
    assert new_pids[0] != stopped
    assert farm.pool.replacements[0]["reason"].startswith("silent for")
