"""The chaos test of issue 19: a Ray farm runs for 2 minutes while NaN observations, raising
steps, SIGSTOPped runners and SIGKILLed runners are injected at random. It must finish with
its counters matching what was injected, finite weights, and no runner process left behind.

The rules, since fragments lost with a killed runner (or dropped as stale) take their env
errors with them, and no test may depend on one trajectory:
- runner faults are exact: runner_timeouts == stops, runner_restarts == stops + kills;
- env errors: never more than the injections the envs logged, and their rate per consumed
  env step within 25% of the injected probability (thousands of injections: the binomial
  spread is a few percent).
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from rlfarm.cluster.ray_farm import RayFarm  # noqa: E402
from rlfarm.cluster.reaper import running  # noqa: E402

pytestmark = pytest.mark.slow

DURATION_S = 120.0
P_NAN, P_RAISE = 2e-3, 1e-3
"""Per copy step; each injection is one env error (one copy reset)."""
RUNNER_TIMEOUT_S = 6.0
FAULT_GAP_S = (12.0, 20.0)
"""Seconds between runner faults, drawn uniformly (the test's own seeded RNG)."""

def _runner_pids(farm: RayFarm, known: dict[tuple[int, int], int]) -> list[int]:
    """Each runner's pid, asked once per incarnation (runner index, generation)."""
    pool = farm.pool
    for index, actor in enumerate(pool.actors):
        key = (index, pool.generation[index])
        if key not in known:
            known[key] = ray.get(actor.pid.remote())
    return [known[(index, pool.generation[index])] for index in range(len(pool.actors))]


def test_chaos_two_minutes(ray_with_faulty_envs, cartpole, tmp_path):
    log = tmp_path / "injections.log"
    cfgs = cartpole(algo="appo", env_id="faulty_env:ChaosCartPole-v0", envs_per_runner=16,
                    env_kwargs={"p_nan": P_NAN, "p_raise": P_RAISE, "log": str(log)},
                    runner_timeout_s=RUNNER_TIMEOUT_S, max_runner_restarts=50)
    rng = np.random.default_rng(19)
    farm = RayFarm(*cfgs, seed=19, total_env_steps=None)
    injected = {"stop": 0, "kill": 0}
    runner_pids: set[int] = set()
    known: dict[tuple[int, int], int] = {}
    try:
        started = time.monotonic()
        next_fault = started + rng.uniform(*FAULT_GAP_S)
        kinds = ["stop", "kill"]
        while time.monotonic() - started < DURATION_S:
            result = farm.iterate()
            assert "stop_error" not in result
            pids = _runner_pids(farm, known)  # a stopped runner never answers: ask each incarnation once
            runner_pids.update(pids)
            ready = [i for i, delivered in enumerate(farm.pool.delivered) if delivered]
            if time.monotonic() >= next_fault and len(ready) == len(pids):
                kind = kinds[sum(injected.values()) % 2] if sum(injected.values()) < 2 else rng.choice(kinds)
                os.kill(pids[int(rng.choice(ready))], signal.SIGSTOP if kind == "stop" else signal.SIGKILL)
                injected[kind] += 1
                next_fault = time.monotonic() + rng.uniform(*FAULT_GAP_S)
        # let the last fault be noticed and its runner replaced
        deadline = time.monotonic() + 3 * RUNNER_TIMEOUT_S + 30
        while farm.runner_restarts < sum(injected.values()) and time.monotonic() < deadline:
            result = farm.iterate()
        weights = ray.get(farm.learners[0].weights.remote())
    finally:
        farm.close()
    lines = log.read_text().split()
    injected_errors = len(lines)
    assert injected["stop"] >= 1 and injected["kill"] >= 1
    assert result["runner_timeouts"] == injected["stop"]
    assert result["runner_restarts"] == injected["stop"] + injected["kill"]
    assert 0 < result["env_errors"] <= injected_errors
    rate = result["env_errors"] / result["env_steps"]
    assert abs(rate - (P_NAN + P_RAISE)) < 0.25 * (P_NAN + P_RAISE), (rate, result["env_steps"])
    assert {"nan", "raise"} <= set(lines)
    for name, value in weights["params"].items():
        assert np.isfinite(np.asarray(value)).all(), name
    for name, value in (weights["normalizer"] or {}).items():
        if isinstance(value, (np.ndarray, float, int)):
            assert np.isfinite(np.asarray(value, dtype=np.float64)).all(), name
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in runner_pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in runner_pids if running(pid)], "runner processes left behind"


BRIDGE_DURATION_S = 40.0
P_CLOSE = 0.02
"""Per step reply of a simulator program: it closes its stdout and runs on."""


def test_chaos_with_a_misbehaving_bridge_simulator(ray_local, cartpole, tmp_path):
    """Issue 26: a Ray farm over rlfarm/Subprocess-v0 whose programs each fork a helper and
    close their stdout at random (running on). The farm goes on, each fault costs no more
    than a restart (not the 30 s step timeout), the faults are counted as env errors, and no
    program or helper is left at the end. (A killed runner's programs and helpers end through
    the bridge's supervisor: tests/envs/test_bridge_orphans.py, tests/cluster/test_bridge_reaper.py.)"""
    import sys
    from pathlib import Path

    pidfile = tmp_path / "pids"
    rude_sim = str(Path(__file__).resolve().parents[1] / "envs" / "rude_sim.py")
    cfgs = cartpole(algo="appo", env_id="rlfarm/Subprocess-v0", envs_per_runner=4,
                    env_kwargs={"command": [sys.executable, rude_sim, "chaos", str(pidfile), str(P_CLOSE)],
                                "obs_dim": 4, "num_actions": 2, "copies_per_process": 2, "step_timeout_s": 30.0},
                    # no runner is meant to time out here: a fragment with several faults (each
                    # a wait, a stop and a restart) may take seconds on a loaded machine
                    runner_timeout_s=20.0, max_runner_restarts=5, fragment_length=16)
    farm = RayFarm(*cfgs, seed=26, total_env_steps=None)
    try:
        started = time.monotonic()
        while time.monotonic() - started < BRIDGE_DURATION_S:
            begun = time.monotonic()
            result = farm.iterate()
            assert time.monotonic() - begun < 30.0  # a closed stdout is a fault at once, not a 30 s timeout
    finally:
        farm.close()
    assert result["runner_restarts"] == 0 and result["env_errors"] > 0, result
    started_pids = [int(line) for line in pidfile.read_text().split()]
    assert len(started_pids) > 8  # programs and helpers, restarted after faults
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in started_pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in started_pids if running(pid)], "simulator processes left behind"
