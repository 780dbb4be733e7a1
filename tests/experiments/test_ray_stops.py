"""Bounded stops keep the run in Ray mode (issue 26, case 1): stop.wall_s, SIGTERM and SIGUSR1
that fall while the driver waits on a slow runner end the run with a final checkpoint and a
summary. Before, the deadline's SIGALRM raised inside `ray.wait` ("SystemError: ... returned a
result with an exception set") and the run ended "crashed" with no checkpoint.

The driver runs in its own process (the signals go to it), with short graces set before its
CLI runs; the env is slow from its 48th step (each step 1 s per copy, a fragment 32 s), so the
stop comes while the driver waits for a fragment that cannot arrive within the grace."""
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
DRIVER = (
    "import sys\n"
    "from rlfarm.experiments.run import stops, train\n"
    "stops.STOP_GRACE_S = 1.0\n"
    "train.WALL_GRACE_S = 1.0\n"
    "from rlfarm.experiments.cli import main\n"
    "sys.exit(main(['train', sys.argv[1]]))\n"
)


def _slow_ray_config(write_config, mark: Path, wall_s: float) -> Path:
    return write_config({
        "env": {"id": "rlfarm_test/HangingCartPole-v0", "imports": ["bad_envs"], "envs_per_runner": 2,
                "kwargs": {"hang_at": 48, "slow_s": 1.0, "mark_path": str(mark)}},
        "farm": {"mode": "ray", "num_runners": 1, "fragment_length": 16},
        "stop": {"env_steps": 0, "wall_s": wall_s}, "log": {"checkpoint_interval_s": 0}})


def _start_driver(config: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p))  # Ray's workers import bad_envs
    with open(log, "w") as stream:
        return subprocess.Popen([sys.executable, "-c", DRIVER, str(config)], stdout=stream,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for_file(path: Path, driver: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not path.exists():
        if driver.poll() is not None:
            pytest.fail(f"the run ended before its env got slow: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    assert path.exists(), f"the env never got slow: {log.read_text()[-3000:]}"


def _check_stopped_with_checkpoint(driver: subprocess.Popen, log: Path, runs: Path, reason: str,
                                   code: int, stopped_at: float) -> None:
    try:
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    text = log.read_text()
    # The stop's bound: the grace (1 s) plus the final checkpoint and closing block (a
    # placement query waits up to 10 s on the busy runner), with slack for a loaded machine.
    assert time.monotonic() - stopped_at < 60, text[-3000:]
    assert "SystemError" not in text, text[-3000:]
    assert driver.returncode == code, text[-3000:]
    run_dir = next(p for p in runs.iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_reason"] == reason, summary
    assert summary["env_steps"] > 0, summary
    assert summary["last_checkpoint"] and Path(summary["last_checkpoint"]).is_file(), summary
    assert "did not end in time; interrupted it" in text, text[-3000:]


@pytest.mark.slow
def test_stop_wall_s_in_ray_mode_keeps_the_checkpoint(write_config, runs_dir, tmp_path):
    mark, log = tmp_path / "slow", tmp_path / "train.log"
    driver = _start_driver(_slow_ray_config(write_config, mark, wall_s=8), log)
    _wait_for_file(mark, driver, log, timeout_s=180)
    _check_stopped_with_checkpoint(driver, log, runs_dir, "wall_s", 0, time.monotonic())


@pytest.mark.slow
@pytest.mark.parametrize("signum, reason, code", [(signal.SIGTERM, "sigterm", 143),
                                                  (signal.SIGUSR1, "requeue", 138)])
def test_a_stop_signal_in_ray_mode_keeps_the_checkpoint(write_config, runs_dir, tmp_path, signum, reason, code):
    mark, log = tmp_path / "slow", tmp_path / "train.log"
    driver = _start_driver(_slow_ray_config(write_config, mark, wall_s=600), log)
    _wait_for_file(mark, driver, log, timeout_s=180)
    time.sleep(0.5)  # the driver is inside its wait for the slow fragment
    os.kill(driver.pid, signum)
    _check_stopped_with_checkpoint(driver, log, runs_dir, reason, code, time.monotonic())
