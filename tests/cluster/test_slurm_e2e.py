"""`rlfarm slurm ... --submit` on the real SLURM of the test cluster (`bash .ci/slurm.sh start`:
gpu1 in partition `gpu`, cpu1 and cpu2 in `cpu`, the default, all three in `all`): one-node
jobs, two jobs side by side, a 3-node job, a heterogeneous CPU+GPU job and a job that outlives
its time limit by requeueing itself (--requeue); `rlfarm jobs` listing this user's jobs.

Each job brings up a real Ray head inside the allocation, trains a tiny CartPole run on the
Ray farm and brings Ray down. Only the test cluster's SLURM is used: SLURM_CONF must be the
one `.ci/slurm.sh env` prints and the hosts of .ci/hosts.sh must be up, whatever `sbatch` is
on PATH. Skipped with the reason otherwise; with RLFARM_REQUIRE_SLURM=1 (CI) that fails instead.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlfarm.cluster.launch import slurm

from .conftest import skip_or_fail, slurm_unavailable_reason, write_tiny_ray_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster

@pytest.fixture(scope="module", autouse=True)
def slurm_up():
    skip_or_fail(slurm_unavailable_reason(), "RLFARM_REQUIRE_SLURM", "the test cluster's SLURM")


def write_config(tmp_path: Path, name: str, **sections: dict) -> tuple[Path, Path]:
    log_dir = tmp_path / f"runs-{name}"
    return write_tiny_ray_config(tmp_path / f"{name}.yaml", name, log_dir, **sections), log_dir


def rlfarm_slurm(config: Path, script: Path, *extra: str, shape: tuple[str, ...] = ("--nodes", "1")
                 ) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rlfarm.experiments.cli", "slurm", str(config), *shape,
               "--cpus-per-node", "1", "--time", "00:05:00", "--output", str(script), "--submit", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400)


def job_id_of(out: subprocess.CompletedProcess) -> str:
    match = re.search(r"submitted job (\d+)", out.stdout)
    assert match, out.stdout + out.stderr
    return match.group(1)


def ray_processes_of(job_id: str) -> list[str]:
    """Command lines of live processes that belong to this job's Ray (its temp dirs, one per
    node: /tmp/rf-JOBID-HOSTNAME)."""
    marker = f"/tmp/rf-{job_id}-"
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            text = Path(cmdline).read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(text)
    return found


def check_job(job_id: str, log_dir: Path, log_file: Path) -> str:
    """Assert COMPLETED, summary.json written, no Ray left; return the job's log text."""
    return check_job_summary(job_id, log_dir, log_file)[0]


def check_job_summary(job_id: str, log_dir: Path, log_file: Path) -> tuple[str, dict]:
    """check_job, returning the log text and summary.json."""
    state, exit_code = slurm.job_state(job_id)
    log_text = log_file.read_text() if log_file.exists() else "(no log)"
    assert state == "COMPLETED", f"job {job_id}: {state} {exit_code}\n{log_text[-4000:]}"
    summaries = glob.glob(str(log_dir / "*" / "summary.json"))
    assert len(summaries) == 1, log_text[-4000:]
    summary = json.loads(Path(summaries[0]).read_text())
    assert summary["env_steps"] >= 1024
    assert "farm.mode=ray" in log_text          # the Ray farm ran, on the job's own Ray
    assert ray_processes_of(job_id) == [], "Ray processes outlived the job"
    assert glob.glob(f"/tmp/rf-{job_id}-*") == [], "Ray temp dirs outlived the job"
    return log_text, summary


def test_one_job_completes_and_leaves_no_ray(tmp_path):
    config, log_dir = write_config(tmp_path, "one")
    out = rlfarm_slurm(config, tmp_path / "one.sbatch", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = job_id_of(out)
    log_text = check_job(job_id, log_dir, tmp_path / f"one-{job_id}.out")
    assert "Ray auth: the job API refuses requests without the token" in log_text
    assert "dashboard 127.0.0.1:" in log_text


def test_two_jobs_share_the_node_without_port_clash(tmp_path):
    jobs = []
    for name in ("left", "right"):
        config, log_dir = write_config(tmp_path, name)
        out = rlfarm_slurm(config, tmp_path / f"{name}.sbatch")
        assert out.returncode == 0, out.stdout + out.stderr
        jobs.append((name, job_id_of(out), log_dir))
    # Both must be running at once for the test to mean anything: one CPU each on the node.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [slurm.job_state(job_id)[0] for _, job_id, _ in jobs]
        if states == ["RUNNING", "RUNNING"] or any(s in slurm.FINISHED_STATES for s in states):
            break
        time.sleep(0.5)
    assert states == ["RUNNING", "RUNNING"], f"the two jobs did not run side by side: {states}"
    heads = []
    for name, job_id, log_dir in jobs:
        state, _ = slurm.wait_job(job_id, timeout_s=300)
        log_text = check_job(job_id, log_dir, tmp_path / f"{name}-{job_id}.out")
        heads.append(re.search(r"Ray head on \S+ at (\S+), dashboard (\S+),", log_text).groups())
    assert set(heads[0]).isdisjoint(heads[1]), f"the jobs shared ports: {heads}"


def hosts_of(summary: dict, role: str) -> set[str]:
    return {placement["hostname"] for placement in summary["placement"][role]}


def test_homogeneous_three_node_job_spreads_runners(tmp_path):
    config, log_dir = write_config(tmp_path, "three")
    out = rlfarm_slurm(config, tmp_path / "three.sbatch", "--partition", "all", "--wait",
                       shape=("--nodes", "3"))
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = job_id_of(out)
    log_text, summary = check_job_summary(job_id, log_dir, tmp_path / f"three-{job_id}.out")
    assert "3 Ray node(s) up" in log_text
    assert hosts_of(summary, "runners") | hosts_of(summary, "learners") <= {"gpu1", "cpu1", "cpu2"}


def test_heterogeneous_job_runners_on_cpu_nodes_learner_on_gpu1(tmp_path):
    config, log_dir = write_config(tmp_path, "het")
    out = rlfarm_slurm(config, tmp_path / "het.sbatch", "--gpus-per-node", "1", "--wait",
                       shape=("--cpu-nodes", "2", "--cpu-partition", "cpu",
                              "--gpu-nodes", "1", "--gpu-partition", "gpu"))
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = job_id_of(out)
    _, summary = check_job_summary(job_id, log_dir, tmp_path / f"het-{job_id}.out")
    assert hosts_of(summary, "runners") == {"cpu1", "cpu2"}, summary["placement"]
    assert hosts_of(summary, "learners") == {"gpu1"}
    assert slurm.job_state(job_id)[0] == "COMPLETED"


def test_requeue_chain_outlives_the_time_limit(tmp_path):
    """A 2-minute job whose training needs 100 s of training time: SLURM's USR1 comes 60-90 s
    into each start (30 s warning plus SLURM's 30 s resolution), after at most about 85 s of
    training, so the run needs at least two segments; the chain ends at stop.wall_s."""
    # An env-step budget no start can reach, so that stop.wall_s ends the chain: this tiny
    # config trains at about 10k env steps/s here, and 1M once ran out 0.8 s before the 100 s.
    config, log_dir = write_config(tmp_path, "chain", stop={"env_steps": 100_000_000, "wall_s": 100})
    command = [sys.executable, "-m", "rlfarm.experiments.cli", "slurm", str(config), "--nodes", "1",
               "--cpus-per-node", "2", "--time", "2", "--requeue", "--requeue-warning-s", "30",
               "--output", str(tmp_path / "chain.sbatch"), "--submit", "--wait"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = job_id_of(out)
    log_text = (tmp_path / f"chain-{job_id}.out").read_text()
    show = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    assert int(re.search(r"Restarts=(\d+)", show).group(1)) >= 1, log_text[-4000:]
    summaries = glob.glob(str(log_dir / "*" / "summary.json"))
    assert len(summaries) == 1, log_text[-4000:]  # one run dir across every start
    summary = json.loads(Path(summaries[0]).read_text())
    # The final summary is an uninterrupted run's: ended by its budget, a checkpoint, returns.
    assert summary["exit_reason"] == "wall_s" and summary["wall_s"] >= 100, summary
    assert summary["segments"] >= 2 and os.path.exists(summary["last_checkpoint"])
    assert summary["episode_return_mean"] is not None
    # Each earlier start stopped on USR1 with a checkpoint (one per start: checkpoint_interval_s
    # is 0), and the next resumed from it.
    requeues = log_text.count("rlfarm train exited with status 138")
    assert requeues == summary["segments"] - 1 and "USR1: the time limit is near" in log_text
    assert log_text.count("rlfarm train: resuming") == requeues
    checkpoints = sorted(Path(summaries[0]).parent.glob("checkpoints/ckpt-*.pt"))
    stops = [int(path.stem.split("-")[1]) for path in checkpoints][:-1][-requeues:]
    assert len(stops) == min(requeues, 2) and stops[-1] < summary["env_steps"]
    # The step counter goes on across segments: the TensorBoard points of all starts, in order.
    from rlfarm.experiments.report.monitor import read_scalars

    steps = [step for step, _ in read_scalars(os.path.dirname(summaries[0]), ["system/rss_mb"])["system/rss_mb"]]
    assert steps == sorted(steps) and steps[0] < stops[0] < steps[-1] <= summary["env_steps"]
    assert ray_processes_of(job_id) == [] and glob.glob(f"/tmp/rf-{job_id}-*") == []


def rlfarm_jobs() -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "jobs"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def row_of(listing: str, job_id: str) -> list[str]:
    rows = [line.split() for line in listing.splitlines() if line.split()[:1] == [job_id]]
    assert len(rows) == 1, listing
    return rows[0]


def test_jobs_lists_this_users_slurm_jobs_with_their_state():
    held = subprocess.run(["sbatch", "--parsable", "--hold", "--job-name=rlfarm-listed", "--output=/dev/null",
                           "--wrap=true"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        out = rlfarm_jobs()
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[:3] == ["JOB_ID", "NAME", "STATE"]
        row = row_of(out.stdout, held)
        assert row[1:3] == ["rlfarm-listed", "PENDING"] and row[-1] == "(JobHeldUser)"
        nobody = pwd.getpwnam("nobody").pw_uid
        assert held not in {r["job_id"] for r in slurm.list_jobs(uid=nobody)}  # another user's view
    finally:
        subprocess.run(["scancel", held], check=True)
    deadline = time.monotonic() + 30
    while slurm.job_state(held)[0] != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert row_of(rlfarm_jobs().stdout, held)[2] == "CANCELLED"
