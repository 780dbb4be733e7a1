"""`rlfarm train`: the run dir, stop conditions, progress output, Ctrl-C and crashes."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest

from rlfarm.experiments.config import load_config
from rlfarm.experiments.report.progress import Progress, Status

from .conftest import only_run_dir, read_summary

SUMMARY_KEYS = ("env_steps", "wall_s", "env_steps_per_s", "episode_return_mean", "solved",
                "runner_restarts", "dropped_fragments", "exit_reason", "last_checkpoint")


def test_short_run_writes_the_run_dir(write_config, runs_dir, train, capsys):
    config = write_config()
    assert train(config) == 0
    run_dir = only_run_dir(runs_dir)
    assert run_dir.name.startswith("small-cartpole-")
    summary = read_summary(run_dir)
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["exit_reason"] == "env_steps" and summary["env_steps"] == 2048
    assert summary["solved"] is False and summary["runner_restarts"] == 0
    assert summary["env_steps_per_s"] > 0 and summary["episode_return_mean"] > 0
    assert os.path.exists(summary["last_checkpoint"])
    assert os.path.dirname(summary["last_checkpoint"]) == str(run_dir / "checkpoints")
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
    # the resolved config repeats the run
    assert load_config(run_dir / "config.yaml") == load_config(config)
    err = capsys.readouterr().err
    assert "steps/s" in err and "ran its budget of 2.0k env steps in" in " ".join(err.split())


def test_resolved_config_reruns(write_config, tmp_path, train):
    assert train(write_config(), extra_args=("--run-dir", str(tmp_path / "first"))) == 0
    assert train(tmp_path / "first" / "config.yaml", extra_args=("--run-dir", str(tmp_path / "again"))) == 0
    assert read_summary(tmp_path / "again")["env_steps"] == 2048


def test_run_dir_must_be_new(write_config, tmp_path, train, capsys):
    target = tmp_path / "mine"
    assert train(write_config(), extra_args=("--run-dir", str(target))) == 0
    capsys.readouterr()
    assert train(write_config(), extra_args=("--run-dir", str(target))) == 2
    assert "--resume" in capsys.readouterr().err


def test_stops_at_target_return(write_config, runs_dir, train):
    # a random CartPole policy already averages ~20, so a target of 15 ends the run early
    assert train(write_config(), "stop.env_steps=100000", "stop.target_return=15",
                 "log.return_window=10") == 0
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "target_return" and summary["solved"] is True
    assert summary["env_steps"] < 100000 and summary["episode_return_mean"] >= 15


def test_stops_at_wall_time(write_config, runs_dir, train):
    assert train(write_config(), "stop.env_steps=0", "stop.wall_s=1.0") == 0
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "wall_s" and 1.0 <= summary["wall_s"] < 30


def test_crash_writes_summary_and_points_at_the_last_checkpoint(write_config, runs_dir, train,
                                                                 monkeypatch, capsys):
    from rlfarm.cluster.serial import SerialFarm

    real_iterate, calls = SerialFarm.iterate, {"n": 0}

    def iterate_then_crash(self):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("learner exploded")
        return real_iterate(self)

    monkeypatch.setattr(SerialFarm, "iterate", iterate_then_crash)
    assert train(write_config(), "stop.env_steps=100000", "log.checkpoint_interval_s=1e-9") == 1
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "crashed" and "learner exploded" in summary["error"]
    assert summary["last_checkpoint"] and os.path.exists(summary["last_checkpoint"])
    err = capsys.readouterr().err
    assert "last checkpoint: " + summary["last_checkpoint"] in err
    assert "--resume" in err


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_checkpoint_and_summary(write_config, runs_dir):
    config = write_config({"stop": {"env_steps": 10_000_000}})
    proc = subprocess.Popen([sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # wait until training has started and reported
            if runs_dir.exists() and any(runs_dir.iterdir()) and \
                    any(p.name.startswith("events") for p in only_run_dir(runs_dir).iterdir()):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run wrote no TensorBoard events in 90 s")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "interrupted" and summary["env_steps"] > 0
    assert os.path.exists(summary["last_checkpoint"])


def test_progress_bar_on_a_terminal_and_lines_otherwise(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "200")
    tty = Tty()
    bar = Progress("auto", total_env_steps=1000, stream=tty, target_return=475)
    bar.update(Status(250, 1234.0, 1.0, 20.5, 3.0))
    bar.update(Status(500, 1234.0, 2.0, 30.5, 2.0))
    bar.close()
    text = tty.getvalue()
    assert bar.mode == "bar" and text.count("\r") == 2 and text.endswith("\n")
    assert "500/1.0k steps" in text and "1.2k steps/s" in text and "return 30.5/475" in text
    assert "ETA 0:02" in text and "[##########----------]" in text

    plain = io.StringIO()
    lines = Progress("auto", total_env_steps=1000, stream=plain)
    lines.update(Status(250, 100.0, 1.0, None, 7.0))
    lines.update(Status(500, 100.0, 2.0, None, 5.0))  # within LINES_INTERVAL_S: skipped
    lines.update(Status(1000, 100.0, 3.0, 1.0, 0.0, exit_reason="env_steps"))
    assert lines.mode == "lines" and "\r" not in plain.getvalue()
    assert len(plain.getvalue().splitlines()) == 2


def test_progress_line_drops_fields_by_priority_and_ends_cleanly(monkeypatch):
    """A narrow terminal loses the bar and the ETA before the steps and the return; the final line
    names the reason, a full bar, and no step count past its total."""
    progress = Progress("bar", total_env_steps=300_000, stream=io.StringIO(), target_return=475)
    status = Status(120_000, 15_000.0, 8.0, 300.0, 12.0, policy_lag=1.5, restarts=2)
    wide = progress.line(status, 200)
    assert "lag 1.5" in wide and "restarts 2" in wide and wide.startswith("[")
    for width in (80, 60, 40, 25):
        narrow = progress.line(status, width)
        assert len(narrow) <= width and "120.0k/300.0k steps" in narrow
    assert "restarts 2" in progress.line(status, 60) and "[" not in progress.line(status, 60)
    final = progress.line(Status(300_800, 15_000.0, 20.0, 480.0, exit_reason="target_return"), 200)
    assert "300.8k steps" in final and "/300.0k" not in final
    assert "target reached" in final and "ETA" not in final and "[" + "#" * 20 + "]" in final
