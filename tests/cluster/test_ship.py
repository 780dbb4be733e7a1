"""The user's own code travels with a run to a Ray cluster (cluster/launch/ship.py).

The fast tests check what is chosen; the slow ones submit to a real `ray start --head`
(tests/cluster/test_jobs.py's fixture) whose Python path lacks the user's package, from a
user project folder outside rlfarm's checkout, with no install on the "cluster".
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlfarm.cluster.launch.ship import ShipError, command_files, plan_shipment

from .test_jobs import head  # noqa: F401 - the module-scoped Ray head fixture

REPO = Path(__file__).resolve().parents[2]
REACH = '''\
"""Reach: move a point on a line to a target (docs/envs.md's example)."""
import numpy as np
from gymnasium import spaces

from rlfarm.envs import BatchedEnv


class Reach(BatchedEnv):
    reset_draws = 2

    def __init__(self, num_envs=1, *, speed=0.2, max_episode_steps=50, **kwargs):
        super().__init__(num_envs, spaces.Box(-1.0, 1.0, (2,), np.float32), spaces.Discrete(3),
                         max_episode_steps=max_episode_steps, **kwargs)
        self.speed = speed
        self.state = np.zeros((self.num_envs, 2), np.float32)

    def _reset_copies(self, copies, unit):
        self.state[copies] = (unit * 2.0 - 1.0).astype(np.float32)

    def _observe(self, copies):
        return self.state[copies].copy()

    def _physics(self, actions):
        position = self.state[:, 0]
        position += (actions.astype(np.float32) - 1.0) * self.speed
        np.clip(position, -1.0, 1.0, out=position)
        distance = np.abs(position - self.state[:, 1])
        reached = distance < self.speed / 2
        rewards = np.where(reached, 1.0, -distance).astype(np.float32)
        return self.state.copy(), rewards, reached
'''


def make_project(root: Path, log_dir: Path, farm: str = "mode: ray, num_runners: 1, fragment_length: 32") -> Path:
    """A user's project folder: package `reachpkg` (only here) and its config."""
    (root / "reachpkg").mkdir(parents=True)
    (root / "reachpkg" / "__init__.py").write_text("")
    (root / "reachpkg" / "env.py").write_text(REACH)
    (root / "reach.yaml").write_text(textwrap.dedent(f"""\
        name: reach-shipped
        env: {{id: "reachpkg.env:Reach", envs_per_runner: 64, kwargs: {{speed: 0.2}}}}
        model: {{hidden_sizes: [32, 32]}}
        algo: {{name: ppo, lr: 3.0e-3, device: cpu}}
        farm: {{{farm}}}
        stop: {{env_steps: 200000, target_return: -1.5}}
        log: {{dir: {log_dir}, checkpoint_interval_s: 0}}
        """))
    return root / "reach.yaml"


def test_the_env_package_is_shipped_and_installed_ones_are_not(tmp_path, monkeypatch):
    make_project(tmp_path, tmp_path / "runs")
    (tmp_path / "extra_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plan = plan_shipment("reachpkg.env:Reach", ["numpy", "reachpkg.env"], {}, ["extra_mod.py"], root=str(tmp_path))
    assert plan.py_modules == [str(tmp_path / "reachpkg"), str(tmp_path / "extra_mod.py")]
    assert plan.installed == ["numpy"] and plan.files == []
    assert plan.bytes == sum(p.stat().st_size for p in [tmp_path / "reachpkg" / "env.py", tmp_path / "extra_mod.py"])
    assert "reachpkg, extra_mod.py" in plan.line() and "installed, not shipped: numpy" in plan.line()


def test_bridge_command_files_inside_the_project_travel(tmp_path):
    (tmp_path / "sims").mkdir()
    (tmp_path / "sims" / "heat").write_text("binary")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    command = ["mpirun", "-n", "2", "./sims/heat", "--flag", "run.sh", "/usr/bin/env", "{python}", "missing"]
    assert command_files(command, tmp_path) == ["sims/heat", "run.sh"]
    plan = plan_shipment("rlfarm/Subprocess-v0", [], {"command": command}, root=str(tmp_path))
    staged = plan.runtime_env(tmp_path / "staging")["working_dir"]
    assert (Path(staged) / "sims" / "heat").read_text() == "binary" and plan.files == ["sims/heat", "run.sh"]


def test_oversize_and_missing_code_is_one_line(tmp_path):
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "data.bin").write_bytes(b"\0" * 4096)
    with pytest.raises(ShipError, match=r"^py_modules: the code to ship is .* \(big: .*over rlfarm's .* limit"):
        plan_shipment("rlfarm/CartPole-v1", [], {}, ["big"], root=str(tmp_path), max_bytes=1024)
    with pytest.raises(ShipError, match="py_modules: 'nowhere' does not exist"):
        plan_shipment("rlfarm/CartPole-v1", [], {}, ["nowhere"], root=str(tmp_path))


def test_submit_refuses_oversize_code_in_one_line_exit_2(tmp_path):
    config = make_project(tmp_path, tmp_path / "runs")
    (tmp_path / "big").mkdir()
    with open(tmp_path / "big" / "data.bin", "wb") as stream:  # sparse: its size without the writes
        stream.truncate(101 * 2**20)
    out = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "submit", str(config), "--address",
                          "http://127.0.0.1:9", "--py-module", "big"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "rlfarm submit: error: farm.py_modules: the code to ship is 101 MiB (big: 101 MiB), over rlfarm's "
        "100 MiB limit; put data on a shared filesystem, or install the package on every node"]


@pytest.mark.slow
def test_a_package_only_in_the_users_folder_trains_through_submit(head, tmp_path):  # noqa: F811
    url, env = head
    project = tmp_path / "project"
    config = make_project(project, tmp_path / "runs")
    assert "reachpkg" not in env.get("PYTHONPATH", "")  # the head's Python path lacks it
    out = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "submit", str(config), "--address", url],
                         cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "rlfarm submit: shipping reachpkg (" in out.stderr
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["exit_reason"] == "target_return", summary
    assert summary["shipped"]["py_modules"] == [str(project / "reachpkg")]


@pytest.mark.slow
def test_train_address_ships_the_package_to_the_workers(head, tmp_path):  # noqa: F811
    """`rlfarm train --address` joins the head; its runners (Ray workers) import reachpkg."""
    url, env = head
    project = tmp_path / "project"
    config = make_project(project, tmp_path / "runs")
    # The driver finds reachpkg on its own PYTHONPATH; it runs from another folder, because Ray
    # puts a driver's working folder on its workers' path (on one machine that would hide a
    # missing shipment), and the workers inherit the head's environment, not the driver's.
    driver_env = {**env, "PYTHONPATH": os.pathsep.join([env.get("PYTHONPATH", ""), str(project)])}
    out = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config), "--address",
                          env["RLFARM_TEST_GCS_ADDRESS"]], cwd=tmp_path, env=driver_env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "rlfarm train: shipping reachpkg (" in out.stdout + out.stderr
    assert "node preflight passed on " in out.stdout + out.stderr
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["exit_reason"] == "target_return" and summary["shipped"]["installed"] == []


@pytest.mark.slow
def test_a_bridge_program_in_the_users_folder_travels_with_submit(head, tmp_path):  # noqa: F811
    """The bridge's command names `sims/mysim.py` in the user's folder: the job's runners run
    it from their working dir, the staged copy of that file."""
    url, env = head
    project = tmp_path / "project"
    (project / "sims").mkdir(parents=True)
    (project / "sims" / "mysim.py").write_text((REPO / "envs" / "sims" / "cartpole_sim.py").read_text())
    config = project / "bridge.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: bridge-shipped
        env:
          id: rlfarm/Subprocess-v0
          envs_per_runner: 16
          kwargs: {{command: ["{{python}}", "sims/mysim.py"], obs_dim: 4, num_actions: 2}}
        algo: {{epochs: 1, minibatches: 1, device: cpu}}
        farm: {{mode: ray, num_runners: 1, fragment_length: 16}}
        stop: {{env_steps: 2048}}
        log: {{dir: {tmp_path / "runs"}, checkpoint_interval_s: 0}}
        """))
    out = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "submit", str(config), "--address", url],
                         cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "rlfarm submit: shipping ./sims/mysim.py (" in out.stderr
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["exit_reason"] == "env_steps" and summary["shipped"]["files"] == ["sims/mysim.py"]
