"""`rlfarm sweep` and `rlfarm.sweep`: hyperparameter sweeps on Ray Tune, each trial an rlfarm run.

The sweeps run the shipped example (experiments/examples/sweep_cartpole.yaml) at a small
budget on the embedded Ray (one Ray session per test, started and shut down by the sweep)."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import rlfarm
from rlfarm.experiments.launch import sweep as sweep_module

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "experiments" / "examples" / "sweep_cartpole.yaml"


def write_sweep(tmp_path: Path, section: dict, **base) -> Path:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["sweep"] = section
    raw.update(base)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("section, message", [
    ({"num_runners": [1, 2]}, "run it with `rlfarm scale`"),
    ({"parameters": {"algo.lr": [1e-3]}, "searh": "grid"}, r"sweep\.searh: unknown key"),
    ({"parameters": {"algo.lr": {"uniform": [1e-4, 1e-3]}}}, r"sweep\.parameters\.algo\.lr: a distribution needs"),
    ({"parameters": {"algo.lrr": [1e-3]}}, r"sweep\.parameters\.algo\.lrr=0\.001: algo\.lrr: unknown key"),
    ({"parameters": {"algo.lr": [-1.0]}}, r"sweep\.parameters\.algo\.lr=-1\.0: algo\.lr"),
    ({"parameters": {"algo.lr": [1e-3]}, "asha": {"grace_period": 0}}, r"sweep\.asha\.grace_period"),
])
def test_a_bad_sweep_section_names_its_field(tmp_path, section, message):
    with pytest.raises(rlfarm.ConfigError, match=message):
        sweep_module.load_sweep_config(write_sweep(tmp_path, section))


def test_the_cli_reports_a_bad_section_in_one_line_with_exit_2(tmp_path):
    path = write_sweep(tmp_path, {"parameters": {"algo.lrr": [1e-3]}})
    proc = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "sweep", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "sweep.parameters.algo.lrr" in proc.stderr


@pytest.mark.slow
def test_asha_sweep_of_the_example_writes_reports_and_stops_a_weak_trial_early(tmp_path):
    """4 trials (lr 2.5e-3 and 3e-4 x clip 0.1 and 0.2), two at a time, the good lr first.
    At ASHA's first rung (20k env steps) the 3e-4 trials trail the 2.5e-3 ones already
    recorded there (about 40 against 70-85 in the example's runs), so ASHA stops at least one."""
    result = rlfarm.sweep(EXAMPLE, {"stop.env_steps": 41_000, "log.dir": str(tmp_path / "runs"),
                                    "sweep.max_concurrent": 2}, out=tmp_path / "sweep")
    assert len(result.rows) == 4
    for name in ("sweep.csv", "sweep.md", "sweep.png"):
        assert (result.dir / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(result.dir / "sweep.csv")))
    assert [row["trial"] for row in rows] == [row["trial"] for row in result.rows]
    assert {row["algo.lr"] for row in rows} == {"0.0025", "0.0003"}
    stopped = [row for row in result.rows if row["stopped_early"]]
    assert stopped and all(row["env_steps"] < 41_000 for row in stopped), result.rows
    returns = [row["episode_return_mean"] for row in result.rows if row["episode_return_mean"] is not None]
    assert returns == sorted(returns, reverse=True)  # best first
    best = result.best
    assert best.summary["exit_reason"] in ("env_steps", "target_return")
    assert rlfarm.evaluate(best, episodes=2)["episodes"] == 2


@pytest.mark.slow
def test_a_sweep_interrupted_with_ctrl_c_resumes_and_its_trials_continue_their_runs(tmp_path):
    config = write_sweep(tmp_path, {"parameters": {"algo.lr": [2.5e-3, 1e-3]}},
                         stop={"env_steps": 40_000}, log={"dir": str(tmp_path / "runs"),
                                                          "checkpoint_interval_s": 0.5})
    out = tmp_path / "sweep"
    env = {**os.environ, "RLFARM_TORCH_THREADS": "1"}
    command = [sys.executable, "-m", "rlfarm.experiments.cli", "sweep"]
    proc = subprocess.Popen([*command, str(config), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not list(out.glob("trials/*/checkpoints/ckpt-*.pt")) and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode in (0, 130), output[-3000:]
    resumed = subprocess.run([*command, "--resume", str(out)], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert len(rows) == 2 and all(int(row["env_steps"]) >= 40_000 for row in rows), rows
    assert all(row["exit_reason"] == "env_steps" for row in rows), rows


def test_submit_sweep_runs_rlfarm_sweep_on_the_cluster_with_out_as_the_sweep_dir():
    from rlfarm.experiments.launch import submit

    command = submit.build_entrypoint(str(EXAMPLE), ["sweep.max_concurrent=4"], "/shared/runs/s", str(REPO),
                                      command="sweep")
    assert command == ("python -m rlfarm.experiments.cli sweep experiments/examples/sweep_cartpole.yaml "
                       "--set sweep.max_concurrent=4 --out /shared/runs/s")
