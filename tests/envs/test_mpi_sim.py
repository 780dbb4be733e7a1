"""The MPI reference simulator (envs/sims/heat1d_mpi.c) over the bridge, its command an MPI
launcher: 2 ranks give the trajectories of the one-rank run, a killed launcher takes
its ranks with it and is restarted and counted, and it trains through the Ray farm.

Built with the system's mpicc; skipped with the reason where Open MPI is missing, except
where RLFARM_REQUIRE_MPI=1 (.ci/run installs openmpi-bin and libopenmpi-dev).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlfarm import envs

from .conftest import alive

HEAT = {"obs_dim": 64, "action_dim": 4, "action_low": 0.0, "action_high": 1.0, "max_episode_steps": 50,
        "step_timeout_s": 30.0}
CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "external_sim_mpi.yaml"


@pytest.fixture(scope="module")
def mpi_sim(tmp_path_factory) -> str:
    from rlfarm.envs.sims import mpi_heat

    missing = [tool for tool in ("mpicc", "mpirun") if shutil.which(tool) is None]
    if missing:
        reason = f"no {' or '.join(missing)} on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)"
        if os.environ.get("RLFARM_REQUIRE_MPI") == "1":
            pytest.fail(f"RLFARM_REQUIRE_MPI=1 but {reason}")
        pytest.skip(reason)
    return mpi_heat.build(str(tmp_path_factory.mktemp("mpi")))


def run(command: list[str], copies: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    env = envs.make("rlfarm/Subprocess-v0", copies, command=command, copies_per_process=copies, **HEAT)
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    observations, rewards = [obs], []
    for _ in range(steps):  # past one 50-step episode: autoresets line up too
        obs, reward, _, _, _ = env.step(rng.random((copies, 4), dtype=np.float32))
        observations.append(obs)
        rewards.append(reward)
    env.close()
    return np.array(observations), np.array(rewards)


def test_split_ranks_give_the_one_rank_trajectories(mpi_sim):
    from rlfarm.envs.sims.mpi_heat import launcher

    one_obs, one_rewards = run([*launcher(1), mpi_sim], 5, 60)
    assert np.abs(one_obs[1:, :, :32]).max() > 0.05  # the heaters did heat the rod
    for ranks in (2,):
        obs, rewards = run([*launcher(ranks), mpi_sim], 5, 60)
        # Every node's update reads the same three values whatever the split, and rank 0 sums
        # the rewards over the gathered rod in node order: equal up to float32 rounding.
        np.testing.assert_allclose(obs, one_obs, rtol=0, atol=1e-6)
        np.testing.assert_allclose(rewards, one_rewards, rtol=0, atol=1e-6)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def test_a_killed_launcher_takes_its_ranks_and_is_restarted_and_counted(mpi_sim):
    from rlfarm.envs.sims.mpi_heat import launcher

    env = envs.make("rlfarm/Subprocess-v0", 8, command=[*launcher(2), mpi_sim], copies_per_process=4, **HEAT)
    env.reset(seed=0)
    first = env.pids()
    ranks = [pid for pid in _descendants(first[0]) if "heat1d_mpi" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(ranks) == 2
    errors = 0
    for t in range(10):
        if t == 3:
            os.kill(first[0], signal.SIGKILL)
        obs, _, _, _, infos = env.step(np.full((8, 4), 0.5, np.float32))
        errors += infos.get("env_errors", 0)
        assert np.isfinite(obs).all()
    assert errors == 4 and env.restarts == 1
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in ranks), "ranks outlived their killed launcher"
    env.close()


@pytest.mark.slow
def test_the_mpi_simulator_trains_to_the_target_through_the_ray_farm(mpi_sim, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlfarm.experiments.cli", "train", str(CONFIG), "--run-dir", str(tmp_path / "run"),
         "--set", f"log.dir={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["exit_reason"] == "target_return" and summary["solved"], summary
