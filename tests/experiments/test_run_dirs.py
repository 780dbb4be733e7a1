"""One run, one directory: runs started together never share a run dir (issue 19, case 5)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlfarm.experiments.errors import ConfigError
from rlfarm.experiments.run.run_dirs import claim_run_dir

from .conftest import read_summary


@pytest.mark.slow
def test_four_runs_started_at_once_get_four_complete_run_dirs(write_config, runs_dir):
    config = write_config({"stop": {"env_steps": 512}})
    command = [sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err[-2000:] for _, err in outputs]
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    assert len(run_dirs) == 4, run_dirs
    for run_dir in run_dirs:
        summary = read_summary(run_dir)
        assert summary["exit_reason"] == "env_steps" and Path(summary["run_dir"]) == run_dir
        assert (run_dir / "config.yaml").is_file() and Path(summary["last_checkpoint"]).is_file()


CLAIM = """
import os, sys, time
from rlfarm.experiments.errors import ConfigError
from rlfarm.experiments.run.run_dirs import claim_run_dir
path, unique, go = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
while not os.path.exists(go):  # all four claim at the same moment
    time.sleep(0.001)
try:
    print(claim_run_dir(path, unique=unique))
except ConfigError as err:
    print(f"refused: {err}")
"""


def _claim_together(path: Path, unique: bool) -> list[str]:
    """Four fresh interpreters claim `path` at once (no fork of this threaded process)."""
    go = path.parent / f"go-{path.name}"
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, str(path), "1" if unique else "0", str(go)],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(2.0)  # let them start and wait on the go file
    go.touch()
    return [proc.communicate(timeout=60)[0].strip() for proc in procs]


@pytest.mark.slow
@pytest.mark.parametrize("unique", [True, False])
def test_a_run_dir_is_claimed_by_exactly_one_process(tmp_path, unique):
    (tmp_path / "empty").mkdir()  # an existing empty --run-dir may be claimed once
    claimed = _claim_together(tmp_path / ("proposed" if unique else "empty"), unique)
    won = [path for path in claimed if not path.startswith("refused")]
    if unique:
        assert sorted(won) == sorted({str(tmp_path / "proposed")} | {f"{tmp_path / 'proposed'}-{n}" for n in (2, 3, 4)})
    else:
        assert won == [str(tmp_path / "empty")]
        assert all("--run-dir" in text for text in claimed if text.startswith("refused"))
    for path in won:
        assert Path(path, "checkpoints").is_dir()


def test_a_run_dir_with_files_is_refused(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--run-dir"):
        claim_run_dir(str(tmp_path / "used"), unique=False)
    assert sorted(p.name for p in (tmp_path / "used").iterdir()) == ["notes.txt"]
