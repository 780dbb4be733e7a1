"""The node preflight on the test hosts (docs/cluster-testing.md): a worker host that lacks
the user's module fails the run before training, naming that host and the module.

The user's package `nodepkg` sits under a folder named site-packages, as an installed package
would: rlfarm does not ship installed distributions, so only the hosts whose `ray start` has
that folder on PYTHONPATH (gpu1 and cpu1) can import it; cpu2 cannot. Ray runs on its own GCS
port and temp dirs, apart from test_multihost.py's cluster.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_multihost import HOSTS, HOSTS_SH, _descendants, hosts_unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
GCS_PORT = 6393
PREFLIGHT_BOUND_S = 60.0
"""Bound on start of `rlfarm train` -> its exit naming the node (the issue's Done-when)."""
ENV_MODULE = '''\
import numpy as np
from gymnasium import spaces

from rlfarm.envs import BatchedEnv


class Drift(BatchedEnv):
    reset_draws = 1

    def __init__(self, num_envs=1, max_episode_steps=20, **kwargs):
        super().__init__(num_envs, spaces.Box(-1.0, 1.0, (1,), np.float32), spaces.Discrete(2),
                         max_episode_steps=max_episode_steps, **kwargs)
        self.x = np.zeros((self.num_envs, 1), np.float32)

    def _reset_copies(self, copies, unit):
        self.x[copies, 0] = unit[:, 0].astype(np.float32) - 0.5

    def _observe(self, copies):
        return self.x[copies].copy()

    def _physics(self, actions):
        self.x[:, 0] = np.clip(self.x[:, 0] + np.where(actions == 1, 0.1, -0.1), -1, 1)
        return self.x.copy(), -np.abs(self.x[:, 0]), np.zeros(self.num_envs, bool)
'''


@pytest.fixture(scope="module")
def hosts_without_module_on_cpu2(tmp_path_factory):
    reason = hosts_unavailable_reason()
    if reason:
        if os.environ.get("RLFARM_REQUIRE_HOSTS") == "1":
            pytest.fail(f"RLFARM_REQUIRE_HOSTS=1 but the test cluster is not usable: {reason}")
        pytest.skip(f"the test cluster is not usable here: {reason}")
    tmp = tmp_path_factory.mktemp("node-check")
    site = tmp / "site-packages"
    (site / "nodepkg").mkdir(parents=True)
    (site / "nodepkg" / "__init__.py").write_text("")
    (site / "nodepkg" / "env.py").write_text(ENV_MODULE)
    base = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    base.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    rlfarm_path = base.get("PYTHONPATH", "")
    with_module = {**base, "PYTHONPATH": os.pathsep.join(p for p in (rlfarm_path, str(site)) if p)}
    ray = str(Path(sys.executable).parent / "ray")
    nodes: dict[str, subprocess.Popen] = {}
    try:
        for host in ("gpu1", "cpu1", "cpu2"):
            command = ["bash", str(HOSTS_SH), "exec", host, ray, "start", "--block", "--node-ip-address",
                       HOSTS[host], "--temp-dir", f"/tmp/rf-nc-{host}", "--disable-usage-stats", "--num-cpus", "2"]
            if host == "gpu1":
                command += ["--head", "--port", str(GCS_PORT), "--include-dashboard", "false",
                            "--resources", json.dumps({"gpu_node": 1})]
            else:
                command += ["--address", f"{HOSTS['gpu1']}:{GCS_PORT}", "--resources", json.dumps({"cpu_node": 2})]
            log = open(tmp / f"ray-{host}.log", "ab")
            nodes[host] = subprocess.Popen(command, env=base if host == "cpu2" else with_module,
                                           stdout=log, stderr=log, start_new_session=True)
            if host == "gpu1":
                time.sleep(3)
        wait = ("import ray, sys, time; ray.init(address=sys.argv[1]); d = time.time() + 120\n"
                "while sum(n['Alive'] for n in ray.nodes()) < 3 and time.time() < d: time.sleep(0.5)\n"
                "sys.exit(sum(n['Alive'] for n in ray.nodes()) < 3)")
        out = subprocess.run(["bash", str(HOSTS_SH), "exec", "gpu1", sys.executable, "-c", wait,
                              f"{HOSTS['gpu1']}:{GCS_PORT}"], env=base, capture_output=True, text=True, timeout=200)
        assert out.returncode == 0, f"3 Ray nodes did not come up:\n{out.stderr[-3000:]}"
        yield tmp, with_module
    finally:
        for popen in nodes.values():
            for pid in _descendants(popen.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            popen.wait(timeout=30)


def test_a_worker_host_missing_the_module_fails_the_preflight(hosts_without_module_on_cpu2):
    tmp, env = hosts_without_module_on_cpu2
    config = tmp / "drift.yaml"
    config.write_text(
        "name: drift\nenv: {id: 'nodepkg.env:Drift', envs_per_runner: 8}\n"
        "farm: {mode: ray, num_runners: 2, fragment_length: 16, "
        "runner_resources: {num_cpus: 1, resources: {cpu_node: 1}}, "
        "learner_resources: {num_cpus: 1, resources: {gpu_node: 1}}}\n"
        f"algo: {{device: cpu, epochs: 1, minibatches: 1}}\nstop: {{env_steps: 4096}}\nlog: {{dir: {tmp / 'runs'}}}\n")
    started = time.monotonic()
    out = subprocess.run(["bash", str(HOSTS_SH), "exec", "gpu1", sys.executable, "-m", "rlfarm.experiments.cli",
                          "train", str(config), "--address", f"{HOSTS['gpu1']}:{GCS_PORT}"],
                         cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert took < PREFLIGHT_BOUND_S, f"the preflight took {took:.0f} s"
    named = [line for line in out.stderr.splitlines()
             if line.startswith("rlfarm train: node cpu2 (198.18.0.3) could not make its env: ")]
    assert len(named) == 1 and "no module named 'nodepkg'" in named[0], out.stderr[-3000:]
    assert "cpu1 (198.18.0.2) could not" not in out.stderr
    summary = json.loads(next((tmp / "runs").glob("drift-*/summary.json")).read_text())
    assert summary["exit_reason"] == "node_check_failed" and "cpu2 (198.18.0.3)" in summary["error"]
    assert summary["env_steps"] == 0


def test_check_nodes_alone_passes_where_every_node_has_the_module(hosts_without_module_on_cpu2):
    """--check-nodes with runners only on a host that has the module: exit 0, no run dir."""
    tmp, env = hosts_without_module_on_cpu2
    config = tmp / "drift_gpu1.yaml"
    config.write_text(
        "name: drift-gpu1\nenv: {id: 'nodepkg.env:Drift', envs_per_runner: 8}\n"
        "farm: {mode: ray, num_runners: 1, runner_resources: {num_cpus: 1, resources: {gpu_node: 1}}}\n"
        f"log: {{dir: {tmp / 'runs-ok'}}}\n")
    out = subprocess.run(["bash", str(HOSTS_SH), "exec", "gpu1", sys.executable, "-m", "rlfarm.experiments.cli",
                          "train", str(config), "--address", f"{HOSTS['gpu1']}:{GCS_PORT}", "--check-nodes"],
                         cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "rlfarm train: node preflight passed on gpu1(198.18.0.1)" in out.stdout + out.stderr
    assert not (tmp / "runs-ok").exists()
