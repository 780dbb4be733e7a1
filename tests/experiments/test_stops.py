"""Bounded stops and a full disk (issue 19, cases 4 and 9): stop.wall_s and the first SIGTERM
end a serial run whose env step hangs, with a checkpoint and a summary; a full disk ends a
run with one line naming the path and the last good checkpoint, exit 1, and a summary."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from rlfarm.experiments.run import stops as stops_module
from rlfarm.experiments.run import train as train_module

from . import bad_envs  # noqa: F401 - registers the envs (serial mode: this process makes them)
from .conftest import only_run_dir, read_summary

HANG = {"env": {"id": "rlfarm_test/HangingCartPole-v0", "kwargs": {"hang_at": 200}},
        "stop": {"env_steps": 0}, "log": {"checkpoint_interval_s": 0}}
"""A serial run whose env hangs in its 200th step (after a few updates of 2 x 8 x 16 steps)."""


@pytest.fixture
def short_graces(monkeypatch):
    monkeypatch.setattr(train_module, "WALL_GRACE_S", 1.0)  # read by the loop
    monkeypatch.setattr(stops_module, "STOP_GRACE_S", 1.0)  # read by the signal handler


def test_stop_wall_s_holds_in_serial_mode_when_an_env_step_hangs(write_config, runs_dir, train, short_graces):
    config = write_config({**HANG, "stop": {"env_steps": 0, "wall_s": 2}})
    started = time.monotonic()
    assert train(config) == 0
    elapsed = time.monotonic() - started
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "wall_s" and summary["env_steps"] > 0
    assert summary["last_checkpoint"] and Path(summary["last_checkpoint"]).is_file()
    assert elapsed < 60, elapsed  # sanity bound: 2 s + 1 s grace, on a loaded machine


def test_the_first_sigterm_stops_a_hung_serial_run_in_bounded_time(write_config, runs_dir, train, short_graces,
                                                                   capsys):
    config = write_config({**HANG, "env": {**HANG["env"], "kwargs": {"hang_at": 200, "sigterm": True}},
                           "stop": {"env_steps": 0, "wall_s": 600}})
    started = time.monotonic()
    assert train(config) == 143
    assert time.monotonic() - started < 60  # the hang would last the whole 600 s
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "sigterm"
    assert summary["last_checkpoint"] and Path(summary["last_checkpoint"]).is_file()
    assert "did not end in time; interrupted it" in capsys.readouterr().err


@pytest.fixture
def small_disk(tmp_path):
    """A 2.5 MB tmpfs (root only): one 1.65 MB checkpoint of a 256x256 MLP fits, two do not."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2560k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_ends_the_run_with_one_line_and_the_last_good_checkpoint(write_config, train, small_disk,
                                                                             capsys):
    config = write_config({"model": {"hidden_sizes": [256, 256]}, "stop": {"env_steps": 0, "wall_s": 120},
                           "log": {"dir": str(small_disk / "runs"), "checkpoint_interval_s": 0.3}})
    assert train(config) == 1
    run_dir = only_run_dir(small_disk / "runs")
    summary = read_summary(run_dir)
    checkpoints = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    assert summary["exit_reason"] == "crashed"
    assert summary["error"].startswith(f"disk full writing {run_dir / 'checkpoints'}/ckpt-")
    assert [str(p) for p in checkpoints] == [summary["last_checkpoint"]]  # the good one stays
    err = capsys.readouterr().err
    assert f"rlfarm train: {summary['error']}; last good checkpoint: {summary['last_checkpoint']}" in err
    assert "Traceback" not in err
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # no half-written file left
