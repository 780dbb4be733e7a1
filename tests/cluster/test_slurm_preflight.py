"""The node preflight as the sbatch template's own step, on the test cluster's SLURM
(`bash .ci/slurm.sh start`): a 3-node job whose host cpu2 cannot import the user's module
ends before training with status 2, naming cpu2 and the module, and leaves summary.json.

The test hosts share one filesystem and SLURM passes one environment to every node, so no
host can lack a file here; the package makes cpu2 lack it instead: its __init__ raises the
ModuleNotFoundError that Python raises for a missing package when the hostname is cpu2.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlfarm.cluster.launch import slurm

from .test_node_check import ENV_MODULE
from .test_slurm_e2e import job_id_of, ray_processes_of, slurm_up  # noqa: F401 - the module's skip

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.cluster]
MISSING_ON_CPU2 = '''\
import socket

if socket.gethostname() == "cpu2":  # as if the package were not installed there
    raise ModuleNotFoundError("No module named 'nodepkg'", name="nodepkg")
'''


def test_a_slurm_job_whose_worker_lacks_the_module_fails_its_preflight_step(tmp_path):
    site = tmp_path / "site-packages"
    (site / "nodepkg").mkdir(parents=True)
    (site / "nodepkg" / "__init__.py").write_text(MISSING_ON_CPU2)
    (site / "nodepkg" / "env.py").write_text(ENV_MODULE)
    log_dir = tmp_path / "runs"
    config = tmp_path / "drift.yaml"
    config.write_text("name: drift\nenv: {id: 'nodepkg.env:Drift', envs_per_runner: 8}\n"
                      "farm: {mode: ray, num_runners: 2, fragment_length: 16}\n"
                      "algo: {device: cpu, epochs: 1, minibatches: 1}\nstop: {env_steps: 4096}\n"
                      f"log: {{dir: {log_dir}, checkpoint_interval_s: 0}}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(site)) if p)}
    out = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "slurm", str(config), "--nodes", "3",
                          "--partition", "all", "--cpus-per-node", "1", "--time", "00:05:00",
                          "--output", str(tmp_path / "drift.sbatch"), "--submit", "--wait"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    job_id = job_id_of(out)
    log_text = (tmp_path / f"drift-{job_id}.out").read_text()
    state, exit_code = slurm.job_state(job_id)
    assert state == "FAILED" and exit_code.startswith("2"), f"{state} {exit_code}\n{log_text[-4000:]}"
    named = [line for line in log_text.splitlines()
             if line.startswith("rlfarm train: node cpu2 (198.18.0.3) could not make its env: ")]
    assert len(named) == 1 and "no module named 'nodepkg'" in named[0], log_text[-4000:]
    started = re.search(r"\[rlfarm-slurm (\d\d):(\d\d):(\d\d) \S+\] node preflight: every node", log_text)
    failed = re.search(r"\[rlfarm-slurm (\d\d):(\d\d):(\d\d) \S+\] node preflight failed with status 2", log_text)
    assert started and failed, log_text[-4000:]
    seconds = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (started.groups(), failed.groups())]
    assert (seconds[1] - seconds[0]) % 86400 < 60, log_text[-4000:]
    assert "rlfarm train: run " not in log_text.split("node preflight failed")[1]  # no training started
    summary = json.loads(next(log_dir.glob("drift-*/summary.json")).read_text())
    assert summary["exit_reason"] == "node_check_failed" and "cpu2 (198.18.0.3)" in summary["error"]
    assert ray_processes_of(job_id) == [], "Ray processes outlived the job"
