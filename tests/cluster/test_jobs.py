"""`rlfarm submit` and `rlfarm jobs` against a real Ray head (`ray start --head --block`).

The head runs on 127.0.0.1 with free ports, its own short temp dir and its own auth token
(token mode), so it neither meets other Ray clusters on this machine nor accepts requests
without the token. Only this head is stopped at the end (SIGTERM to its `ray start --block`,
then any process left under its temp dir).
"""
from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from rlfarm.cluster.launch import jobs
from rlfarm.experiments.launch import submit

REPO = Path(__file__).resolve().parents[2]
TINY_OVERRIDES = ["env.envs_per_runner=8", "farm.mode=ray", "farm.num_runners=1", "farm.fragment_length=16",
                  "algo.epochs=1", "algo.minibatches=1", "stop.env_steps=1024", "stop.target_return=null",
                  "log.checkpoint_interval_s=0"]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def processes_under(marker: str) -> list[int]:
    pids = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if marker.encode() in Path(cmdline).read_bytes():
                pids.append(int(cmdline.split("/")[2]))
        except (OSError, ValueError):
            continue
    return [pid for pid in pids if pid != os.getpid()]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A real Ray head with token auth; yields (dashboard URL, env for clients)."""
    try:
        import aiohttp  # noqa: F401  - the dashboard and its job API need ray[default]
        import requests  # noqa: F401
    except ImportError as err:
        pytest.fail(f"Ray Jobs need ray[default] ({err}): pip install -e . (pyproject lists it)")
    temp_dir = tempfile.mkdtemp(prefix="rfj-", dir="/tmp")  # short: AF_UNIX paths stay < 107 bytes
    token_file = tmp_path_factory.mktemp("auth") / "token"
    token_file.write_text(secrets.token_hex(16))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    # A job's entrypoint runs `python` from the head's PATH: this interpreter's, also when its
    # venv is used without being activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics = free_ports(7)
    log = open(tmp_path_factory.mktemp("head") / "head.log", "w")
    beside = Path(sys.executable).with_name("ray")  # found without PATH too
    command = [str(beside) if beside.exists() else "ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
               "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
               "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent_http),
               "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(runtime_env),
               "--metrics-export-port", str(metrics), "--min-worker-port", "0", "--max-worker-port", "0",
               "--temp-dir", temp_dir, "--num-cpus", "4", "--disable-usage-stats"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    env["RLFARM_TEST_GCS_ADDRESS"] = f"127.0.0.1:{gcs}"  # for `rlfarm train --address` (test_ship.py)
    try:
        wait_for_job_api(url, token_file.read_text(), process, log.name)
        yield url, env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        for pid in processes_under(temp_dir + "/"):  # only this head's processes
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_job_api(url: str, token: str, process: subprocess.Popen, log_name: str, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(f"{url}/api/version", headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ray start --head exited with {process.returncode}:\n{Path(log_name).read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the Ray job API at {url} did not come up:\n{Path(log_name).read_text()[-3000:]}")


def rlfarm(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.mark.slow
def test_submit_succeeds_and_writes_the_run_dir(head, tmp_path):
    url, env = head
    out = rlfarm(env, "submit", "experiments/configs/cartpole_ppo.yaml", "--address", url,
                 *sets(TINY_OVERRIDES + [f"log.dir={tmp_path}"]))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "SUCCEEDED" in out.stderr
    assert "rlfarm train: run" in out.stdout          # the job's logs were streamed
    summaries = glob.glob(str(tmp_path / "*" / "summary.json"))
    assert len(summaries) == 1
    summary = json.loads(Path(summaries[0]).read_text())
    assert summary["env_steps"] >= 1024 and summary["exit_reason"] == "env_steps"


@pytest.mark.slow
def test_runtime_failure_fails_the_job_and_the_command(head, tmp_path):
    """env kwargs pass the config check (a free-form mapping) but the env rejects them on the head."""
    url, env = head
    config = tmp_path / "bad_kwargs.yaml"   # outside the project: travels inside the entrypoint
    config.write_text("env: {id: rlfarm/CartPole-v1, envs_per_runner: 8, kwargs: {no_such_option: 1}}\n"
                      "farm: {mode: serial, num_runners: 1, fragment_length: 16}\n"
                      f"stop: {{env_steps: 1024}}\nlog: {{dir: {tmp_path}}}\n")
    out = rlfarm(env, "submit", str(config), "--address", url)
    assert out.returncode != 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "FAILED" in out.stderr
    job_id = out.stderr.split("rlfarm submit: job ")[1].split()[0].rstrip(",")
    status = rlfarm(env, "jobs", "status", job_id, "--address", url)
    assert status.returncode == 0 and "FAILED" in status.stdout
    assert "no_such_option" in rlfarm(env, "jobs", "logs", job_id, "--address", url).stdout
    assert not glob.glob(str(tmp_path / "*" / "summary.json"))


@pytest.mark.slow
def test_no_wait_then_jobs_status_logs_stop(head, tmp_path):
    url, env = head
    out = rlfarm(env, "submit", "experiments/configs/cartpole_ppo.yaml", "--address", url, "--no-wait",
                 *sets(TINY_OVERRIDES + [f"log.dir={tmp_path}", "farm.mode=serial"]))
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip().splitlines()[-1]
    assert job_id.startswith("rlfarm-cartpole-ppo-")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = rlfarm(env, "jobs", "status", job_id, "--address", url)
        if "SUCCEEDED" in status.stdout or "FAILED" in status.stdout:
            break
        time.sleep(1)
    assert f"{job_id}: SUCCEEDED" in status.stdout, status.stdout + status.stderr
    listing = rlfarm(env, "jobs", "--address", url)  # no action: every job of the cluster
    assert listing.returncode == 0 and listing.stdout.split()[:4] == ["JOB_ID", "STATUS", "STARTED", "ENTRYPOINT"]
    assert any(line.split()[:2] == [job_id, "SUCCEEDED"] for line in listing.stdout.splitlines())
    assert "rlfarm train: run" in rlfarm(env, "jobs", "logs", job_id, "--address", url).stdout
    stop = rlfarm(env, "jobs", "stop", job_id, "--address", url)
    assert stop.returncode == 0 and "already finished" in stop.stdout


@pytest.mark.slow  # a real `ray start --head` for the module: tens of seconds
def test_wrong_token_is_refused(head):
    url, env = head
    bad = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN_PATH"}
    bad["RAY_AUTH_TOKEN"] = "not-the-token"
    out = rlfarm(bad, "jobs", "status", "raysubmit_none", "--address", url, timeout=60)
    assert out.returncode == 1
    assert "uthentication" in out.stderr and "RAY_AUTH_TOKEN" in out.stderr


@pytest.mark.slow
def test_unknown_job_and_missing_address(head):
    url, env = head
    out = rlfarm(env, "jobs", "status", "rlfarm-no-such-job", "--address", url, timeout=60)
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = rlfarm(env, "jobs", "status", "x", timeout=60)
    assert out.returncode == 1 and "--address" in out.stderr


# ---- no cluster needed ---------------------------------------------------------------------

def test_entrypoint_uses_the_config_path_inside_the_project(tmp_path):
    inside = submit.build_entrypoint(str(REPO / "experiments/configs/cartpole_ppo.yaml"), ["algo.lr=1e-3"],
                                     "/shared/runs/x", str(REPO))
    assert inside == ("python -m rlfarm.experiments.cli train experiments/configs/cartpole_ppo.yaml "
                      "--set algo.lr=1e-3 --run-dir /shared/runs/x")
    outside = tmp_path / "c.yaml"
    outside.write_text("name: it's\n")
    command = submit.build_entrypoint(str(outside), [], None, str(REPO))
    assert "python -m rlfarm.experiments.cli train \"$cfg\"" in command
    run = subprocess.run(["bash", "-c", command.split(" && python")[0] + ' && cat "$cfg"'],
                         capture_output=True, text=True)
    assert run.stdout == "name: it's\n"      # the config survives the shell quoting


def test_exit_codes():
    assert submit.exit_code_for("SUCCEEDED", 0) == 0
    assert submit.exit_code_for("FAILED", 2) == 2
    assert submit.exit_code_for("FAILED", None) == 1
    assert submit.exit_code_for("STOPPED", None) == 1


def test_working_dir_leaves_out_runs_git_and_large_files(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"\0" * (jobs.LARGE_FILE_BYTES + 1))
    (tmp_path / "small.py").write_text("x = 1\n")
    excludes = jobs.working_dir_excludes(tmp_path)
    assert "/big.bin" in excludes and "/small.py" not in excludes
    assert {"runs", ".git"} <= set(excludes)


def test_auth_token_lookup(monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert jobs.read_auth_token() == "from-env"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    (tmp_path / "tok").write_text("from-file\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert jobs.read_auth_token() == "from-file"
