"""Issue 26, item 2, in Ray mode: a runner actor killed with ray.kill (its worker process dies
without closing its env) leaves none of its simulators' descendants behind: not the
programs, not the helpers they forked, not a daemon that left the group with setsid.

The bridge's supervisor (envs/sim_supervisor.py) sees its parent die and kills them all;
the serial and API cases are tests/envs/test_bridge_orphans.py."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from rlfarm.cluster.ray_farm import RayFarm  # noqa: E402
from rlfarm.cluster.reaper import running as alive  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform != "linux", reason="the supervisor is Linux-only (prctl, /proc)")]

RUDE_SIM = str(Path(__file__).resolve().parents[1] / "envs" / "rude_sim.py")
GRACE_S = 10.0
"""Bound on the end of every descendant after ray.kill (the worker's death, then a /proc scan,
on a loaded 2-core machine)."""
PER_PROGRAM = 3
"""Processes each `setsid` program notes: itself, its helper, its daemon."""


def test_a_runner_actor_killed_with_ray_kill_leaves_no_simulator_descendant(ray_local, cartpole, tmp_path):
    pidfile = tmp_path / "pids"
    cfgs = cartpole(algo="ppo", env_id="rlfarm/Subprocess-v0", envs_per_runner=4, num_runners=1,
                    env_kwargs={"command": [sys.executable, RUDE_SIM, "setsid", str(pidfile)],
                                "obs_dim": 4, "num_actions": 2, "copies_per_process": 2},
                    fragment_length=8)
    farm = RayFarm(*cfgs, seed=26, total_env_steps=None)
    pids: list[int] = []
    try:
        farm.iterate()
        deadline = time.monotonic() + GRACE_S
        running: list[int] = []  # the runner's; the driver's own check of the env closed its copy
        while len(running) < 2 * PER_PROGRAM and time.monotonic() < deadline:
            pids = [int(line) for line in pidfile.read_text().split()] if pidfile.exists() else []
            running = [pid for pid in pids if alive(pid)]
            time.sleep(0.05)
        assert len(running) >= 2 * PER_PROGRAM, (pids, running)
        runner_pid = farm.pool.pids()[0]
        ray.kill(farm.pool.actors[0], no_restart=True)
        begun = time.monotonic()
        while alive(runner_pid) and time.monotonic() - begun < GRACE_S:
            time.sleep(0.05)
        assert not alive(runner_pid)
        while any(alive(pid) for pid in pids) and time.monotonic() - begun < GRACE_S:
            time.sleep(0.05)
        left = [pid for pid in pids if alive(pid)]
        assert not left, f"left behind {time.monotonic() - begun:.1f} s after ray.kill: {left}"
    finally:
        for pid in pids:  # the test's own mess, should it fail: not left to the next test
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        farm.close()
