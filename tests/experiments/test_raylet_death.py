"""A raylet that dies while the farm starts its actors (issue 26, case 6) is reported with
the documented line, "the embedded Ray's raylet died while the farm started", exit 1, no
traceback, a summary.json in the run dir, and no process of that Ray left behind.

The driver runs in its own session; the env's construction in a runner (a Ray worker, whose
parent is the raylet) writes the raylet's PID and then takes seconds, so the test kills that
raylet while the driver waits for its runners to start."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stream:
        return int(stream.read().rsplit(")", 1)[1].split()[1])


def _descendants(root: int) -> set[int]:
    """Every live process below `root` (by parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(_parent(int(entry)), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
def test_a_raylet_killed_while_the_farm_starts_is_the_documented_line(write_config, runs_dir, tmp_path):
    mark, log = tmp_path / "raylet.pid", tmp_path / "train.log"
    config = write_config({
        "env": {"id": "rlfarm_test/SlowStartCartPole-v0", "imports": ["bad_envs"], "envs_per_runner": 2,
                "kwargs": {"mark_path": str(mark), "start_s": 60.0}},
        "farm": {"mode": "ray", "num_runners": 1, "fragment_length": 16}})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p))  # Ray's workers import bad_envs
    with open(log, "w") as stream:
        driver = subprocess.Popen([sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config)],
                                  stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    ray_processes: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while not mark.exists() and time.monotonic() < deadline and driver.poll() is None:
            ray_processes |= _descendants(driver.pid)
            time.sleep(0.2)
        assert mark.exists(), f"no runner started its env: {log.read_text()[-3000:]}"
        raylet = int(mark.read_text())
        ray_processes |= _descendants(driver.pid)
        assert raylet in ray_processes and _parent(raylet) == driver.pid, "not the raylet this run's Ray started"
        os.kill(raylet, signal.SIGKILL)
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "the embedded Ray's raylet died while the farm started" in text, text[-3000:]
    assert driver.returncode == 1, text[-3000:]
    run_dir = next(p for p in runs_dir.iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "raylet died" in summary["error"], summary
    deadline = time.monotonic() + 30  # Ray's agents notice their raylet's death by polling
    while any(_alive(pid) for pid in ray_processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [pid for pid in ray_processes if _alive(pid)]
    for pid in left:  # so that a failure here leaves nothing behind either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the run's Ray left behind: {left}"
