"""The Ray farm across hosts of the test cluster (`bash .ci/hosts.sh up`, docs/cluster-testing.md).

One Ray cluster for the module: the head on gpu1 (198.18.0.1, resource `gpu_node`), workers
on cpu1 and cpu2 (resource `cpu_node`), each `ray start` inside its host. `rlfarm train
--address` runs on gpu1, runners ask for `cpu_node`, the learner for `gpu_node`.

Skipped with the reason when the hosts are not up; with RLFARM_REQUIRE_HOSTS=1 (CI) that
fails instead. A "node kill" SIGKILLs every process of that host's Ray node at once (the
host's slurmd, if any, is left alone so the SLURM tests can still use the host).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import HOSTS_SH, TEST_HOSTS, hosts_unavailable_reason, skip_or_fail, write_tiny_ray_config

REPO = Path(__file__).resolve().parents[2]
HOSTS = TEST_HOSTS
GCS_PORT = 6390
# Ray declares a node dead after `failure_threshold` missed health checks, `period_ms` apart,
# each allowed `timeout_ms`: about 3-6 s here (Ray's defaults take about 30-60 s).
HEALTH_CHECK = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                "RAY_health_check_failure_threshold": "3"}
LINK_CUT_NOTICED_S = 30.0
"""Bound on cut link -> dead runner noticed, stated in docs/cluster-testing.md."""

pytestmark = pytest.mark.cluster


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc (parent pid is field 4 of /proc/PID/stat)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


class RayOnHosts:
    """`ray start --block` in each host, each process tree tracked by PID so it can be killed
    alone (a node kill) and nothing else on the machine is touched."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {**os.environ, **HEALTH_CHECK, "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: dict[str, subprocess.Popen] = {}

    def start(self, host: str) -> None:
        resources = {"gpu_node": 1} if host == "gpu1" else {"cpu_node": 2}
        command = ["bash", str(HOSTS_SH), "exec", host, "ray", "start", "--block",
                   "--node-ip-address", HOSTS[host], "--temp-dir", f"/tmp/rf-mh-{host}",
                   "--disable-usage-stats", "--num-cpus", "2", "--resources", json.dumps(resources)]
        if host == "gpu1":
            command += ["--head", "--port", str(GCS_PORT), "--include-dashboard", "false"]
        else:
            command += ["--address", f"{HOSTS['gpu1']}:{GCS_PORT}"]
        log = open(self.tmp / f"ray-{host}.log", "ab")
        self.nodes[host] = subprocess.Popen(command, env=self.env, stdout=log, stderr=log,
                                            start_new_session=True)

    def wait_nodes(self, count: int, timeout_s: float = 120) -> None:
        script = ("import ray, time, sys; ray.init(address=sys.argv[1]); d = time.time() + float(sys.argv[3])\n"
                  "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]) and time.time() < d: time.sleep(0.5)\n"
                  "sys.exit(sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]))")
        out = self.on("gpu1", [sys.executable, "-c", script, self.address, str(count), str(timeout_s)],
                      timeout=timeout_s + 60)
        assert out.returncode == 0, f"{count} Ray nodes did not come up:\n{out.stderr[-3000:]}"

    def kill(self, host: str) -> None:
        """SIGKILL the host's whole Ray node at once (ray start, raylet, workers, actors)."""
        popen = self.nodes.pop(host, None)
        if popen is None:
            return
        for pid in _descendants(popen.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        popen.wait(timeout=30)

    def stop(self) -> None:
        for host in list(self.nodes):
            self.kill(host)

    @property
    def address(self) -> str:
        return f"{HOSTS['gpu1']}:{GCS_PORT}"

    def on(self, host: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(HOSTS_SH), "exec", host, *argv], env=self.env,
                              capture_output=True, text=True, **kwargs)

    def popen(self, host: str, argv: list[str], log: Path) -> subprocess.Popen:
        stream = open(log, "w")
        return subprocess.Popen(["bash", str(HOSTS_SH), "exec", host, *argv], env=self.env,
                                stdout=stream, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    skip_or_fail(hosts_unavailable_reason(), "RLFARM_REQUIRE_HOSTS", "the test cluster")
    ray_hosts = RayOnHosts(tmp_path_factory.mktemp("ray-hosts"))
    try:
        ray_hosts.start("gpu1")
        time.sleep(3)
        ray_hosts.start("cpu1")
        ray_hosts.start("cpu2")
        ray_hosts.wait_nodes(3)
        yield ray_hosts
    finally:
        ray_hosts.stop()
        for host in HOSTS:  # a cut link must not outlive the module, nor Ray's temp dirs
            subprocess.run(["ip", "netns", "exec", host, "ip", "link", "set", "eth0", "up"], check=False)
            shutil.rmtree(f"/tmp/rf-mh-{host}", ignore_errors=True)


def write_config(tmp_path: Path, name: str, env_steps: int, learner_resource: dict | None = None,
                 checkpoint_s: float = 0) -> tuple[Path, Path]:
    """2 runners on the CPU hosts (resource cpu_node), the learner where `learner_resource`
    (default: the gpu_node host); runners may be replaced 4 times."""
    log_dir = tmp_path / "runs"
    config = write_tiny_ray_config(
        tmp_path / f"{name}.yaml", name, log_dir,
        farm={"num_runners": 2, "max_runner_restarts": 4,
              "runner_resources": {"num_cpus": 1, "resources": {"cpu_node": 1}},
              "learner_resources": {"num_cpus": 1, "resources": learner_resource or {"gpu_node": 1}}},
        stop={"env_steps": env_steps}, log={"checkpoint_interval_s": checkpoint_s})
    return config, log_dir


def train_argv(cluster: RayOnHosts, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config),
            "--address", cluster.address, *extra]


def summary_of(log_dir: Path) -> dict:
    paths = sorted(log_dir.glob("*/summary.json"))
    assert len(paths) == 1, paths
    return json.loads(paths[0].read_text())


def wait_for_text(path: Path, pattern: str, process: subprocess.Popen, timeout_s: float = 180) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text() if path.exists() else "")
        if match:
            return match
        assert process.poll() is None, f"train ended before {pattern!r}:\n{path.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} in {timeout_s} s:\n{path.read_text()[-3000:]}")


def host_of_runner(log_text: str, runner: int) -> str:
    return re.search(rf"placement: runners .*?\b{runner}@(\w+)\(", log_text).group(1)


def test_farm_across_hosts_places_runners_on_cpu_hosts_and_the_learner_on_gpu1(cluster, tmp_path):
    config, log_dir = write_config(tmp_path, "across", env_steps=2048)
    out = cluster.on("gpu1", train_argv(cluster, config), timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert re.search(r"placement: runners 0@cpu[12]\(198\.18\.0\.[23]\) 1@cpu[12]\(198\.18\.0\.[23]\); "
                     r"learners 0@gpu1\(198\.18\.0\.1\)", out.stderr), out.stderr[-3000:]
    placement = summary_of(log_dir)["placement"]
    for runner in placement["runners"]:
        assert runner["hostname"] in ("cpu1", "cpu2") and HOSTS[runner["hostname"]] == runner["ip"]
    assert [(p["hostname"], p["ip"]) for p in placement["learners"]] == [("gpu1", "198.18.0.1")]
    assert placement["replacements"] == []


def test_node_kill_replaces_runners_on_the_surviving_host(cluster, tmp_path):
    config, log_dir = write_config(tmp_path, "kill", env_steps=40_000)
    log = tmp_path / "train.log"
    train = cluster.popen("gpu1", train_argv(cluster, config), log)
    try:
        victim = host_of_runner(wait_for_text(log, r"placement: .*", train).group(0), 0)
        wait_for_text(log, r"return ", train)  # training is under way
        cluster.kill(victim)
        assert train.wait(timeout=300) == 0, log.read_text()[-4000:]
    finally:
        if train.poll() is None:
            train.kill()
        cluster.start(victim)  # back for the next tests
        cluster.wait_nodes(3)
    survivor = ({"cpu1", "cpu2"} - {victim}).pop()
    summary = summary_of(log_dir)
    assert summary["exit_reason"] == "env_steps" and summary["runner_restarts"] >= 1
    assert summary["lost_fragments"] >= 1
    placement = summary["placement"]
    assert len(placement["replacements"]) == summary["runner_restarts"]
    # Every runner ends on the survivor; a replacement that itself died (started before Ray
    # had declared the node dead) is recorded with why its placement is unknown.
    assert {p["hostname"] for p in placement["runners"]} == {survivor}, placement
    for replaced in placement["replacements"]:
        assert replaced["placement"].get("hostname", survivor) == survivor, replaced
    assert "starting a fresh one" in log.read_text()


def test_link_cut_is_noticed_and_the_run_goes_on(cluster, tmp_path):
    config, log_dir = write_config(tmp_path, "cut", env_steps=40_000)
    log = tmp_path / "train.log"
    train = cluster.popen("gpu1", train_argv(cluster, config), log)
    victim = None
    try:
        victim = host_of_runner(wait_for_text(log, r"placement: .*", train).group(0), 0)
        wait_for_text(log, r"return ", train)
        subprocess.run(["ip", "netns", "exec", victim, "ip", "link", "set", "eth0", "down"], check=True)
        cut = time.monotonic()
        wait_for_text(log, r"runner \d died", train, timeout_s=LINK_CUT_NOTICED_S + 30)
        noticed_s = time.monotonic() - cut
        assert train.wait(timeout=300) == 0, log.read_text()[-4000:]
    finally:
        if train.poll() is None:
            train.kill()
        if victim:
            subprocess.run(["ip", "netns", "exec", victim, "ip", "link", "set", "eth0", "up"], check=True)
            cluster.kill(victim)
            cluster.start(victim)
            cluster.wait_nodes(3)
    assert noticed_s <= LINK_CUT_NOTICED_S, f"the cut link was noticed after {noticed_s:.1f} s"
    summary = summary_of(log_dir)
    assert summary["exit_reason"] == "env_steps" and summary["runner_restarts"] >= 1


def test_learner_host_loss_names_the_checkpoint_and_resume_continues(cluster, tmp_path):
    # The learner on cpu2 (Ray's per-node resource), so losing its host leaves the driver.
    config, log_dir = write_config(tmp_path, "learner", env_steps=60_000, checkpoint_s=0.5,
                                   learner_resource={"node:198.18.0.3": 0.01})
    log = tmp_path / "train.log"
    train = cluster.popen("gpu1", train_argv(cluster, config), log)
    try:
        wait_for_text(log, r"learners 0@cpu2\(", train)
        deadline = time.monotonic() + 120
        while not list(log_dir.glob("*/checkpoints/ckpt-*.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(log_dir.glob("*/checkpoints/ckpt-*.pt")) and train.poll() is None, log.read_text()[-2000:]
        cluster.kill("cpu2")
        code = train.wait(timeout=300)
    finally:
        if train.poll() is None:
            train.kill()
        cluster.start("cpu2")
        cluster.wait_nodes(3)
    text = log.read_text()
    assert code == 1, text[-4000:]
    match = re.search(r"the learner actor died .*; last checkpoint: (\S+ckpt-(\d+)\.pt)", text)
    assert match, text[-4000:]
    assert "continue with `rlfarm train --resume" in text
    run_dir = next(log_dir.glob("*"))
    resumed = cluster.on("gpu1", [sys.executable, "-m", "rlfarm.experiments.cli", "train", "--resume",
                                  str(run_dir), "--address", cluster.address], timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    summary = summary_of(log_dir)
    assert summary["exit_reason"] == "env_steps" and summary["env_steps"] >= 60_000
    assert summary["placement"]["segment"] == 1
