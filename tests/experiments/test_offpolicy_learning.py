"""SAC and DQN learning claims, judged as rl-zoo judges them: after the stated env-step budget,
the deterministic policy of the final checkpoint is evaluated over 20 episodes with
`rlfarm eval`, on several seeds, with a rule that one bad seed cannot break.

The runs go through `rlfarm train` in fresh processes (experiments/bench/seeds.py), two at a
time in serial mode, one at a time in Ray mode (each Ray farm brings its own processes).
The figures behind each rule are in docs/results/learning.md. Rules whose runs take longer
than CI's budget are marked `study`: .ci/run leaves them out, `python -m pytest -m study` runs them.
"""
from __future__ import annotations

import json
import statistics

import pytest

from rlfarm.experiments.bench.seeds import run_all
from rlfarm.experiments.cli import main as cli_main

from .conftest import CONFIG_DIR

pytestmark = pytest.mark.slow

QUIET = ["log.progress=none", "log.checkpoint_interval_s=0", "log.pictures=false"]


def trained(tmp_path, config: str, seeds: list[int], *overrides: str, workers: int = 2) -> list[dict]:
    rows = run_all(str(CONFIG_DIR / config), [*QUIET, *overrides], seeds, str(tmp_path), workers=workers)
    assert all(row["exit_code"] == 0 for row in rows), rows
    return rows


def eval_returns(rows: list[dict], capsys, episodes: int = 20) -> list[float]:
    """`rlfarm eval RUN_DIR --episodes 20` of each run: the mean return of its final checkpoint's
    deterministic policy, one episode per env copy."""
    means = []
    for row in rows:
        capsys.readouterr()
        assert cli_main(["eval", row["run_dir"], "--episodes", str(episodes)]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["episodes"] == episodes
        means.append(result["return_mean"])
    return means


def at_least_4_of_5(tmp_path, capsys, config: str, target: float, *overrides: str, workers: int = 2) -> list[float]:
    """Seeds 0-3 first, seed 4 only when they leave the rule undecided (3 of 4 at the target):
    the same verdict as running all five, for four fifths of the time when it holds."""
    means = eval_returns(trained(tmp_path / "0-3", config, [0, 1, 2, 3], *overrides, workers=workers), capsys)
    if sum(m >= target for m in means) == 3:
        means += eval_returns(trained(tmp_path / "4", config, [4], *overrides, workers=1), capsys)
    assert sum(m >= target for m in means) >= 4, means
    return means


def test_sac_pendulum_serial_reaches_minus_200_on_4_of_5_seeds_at_20k(tmp_path, capsys):
    """Rule: seeds 0-4 of pendulum_sac.yaml (serial, exact update-to-data ratio 1) after 20k env
    steps: at least 4 evaluate at a mean return >= -200 (rl-zoo's SAC: -157 at 20k). Two runs at a
    time, 75-95 CPU core-seconds each: about 4 minutes on 2 idle cores, 5.4 on a shared one
    (docs/results/learning.md)."""
    at_least_4_of_5(tmp_path, capsys, "pendulum_sac.yaml", -200.0, "farm.mode=serial")


@pytest.mark.study  # five Ray farms one at a time, after the serial rule's 4 minutes: over CI's budget
def test_sac_pendulum_ray_2_runners_reaches_minus_200_on_4_of_5_seeds_at_20k(tmp_path, capsys):
    """The same rule with the Ray farm and 2 runners: runners sample while the learner updates,
    which paces them through the fragments in flight (farm.max_inflight)."""
    at_least_4_of_5(tmp_path, capsys, "pendulum_sac.yaml", -200.0, "farm.mode=ray", "farm.num_runners=2",
                    "farm.fragment_length=4", workers=1)


def test_dqn_cartpole_reaches_475_on_4_of_5_seeds_at_100k(tmp_path, capsys):
    """Rule: seeds 0-4 of cartpole_dqn.yaml after 100k env steps: at least 4 evaluate at a mean
    return >= 475 (rl-zoo's DQN: 500 at 50k). Five 100k runs, two at a time; its time on
    2 cores is recorded in docs/results/learning.md."""
    rows = trained(tmp_path, "cartpole_dqn.yaml", [0, 1, 2, 3, 4], "farm.mode=serial")
    means = eval_returns(rows, capsys)
    assert sum(m >= 475 for m in means) >= 4, means


@pytest.mark.study  # six runs of 300k (SAC) and 1M (APPO) env steps: 25-35 minutes on 2 cores
def test_ks_sac_at_300k_costs_no_more_than_appo_at_1m(tmp_path, capsys):
    """Rule: over seeds 0-2, the median evaluation cost (minus the return) of ks_sac.yaml after
    300k env steps is at most that of ks_appo.yaml after 1M, both in serial mode."""
    sac = eval_returns(trained(tmp_path / "sac", "ks_sac.yaml", [0, 1, 2], "farm.mode=serial"), capsys)
    appo = eval_returns(trained(tmp_path / "appo", "ks_appo.yaml", [0, 1, 2], "farm.mode=serial",
                                "stop.env_steps=1000000"), capsys)
    assert -statistics.median(sac) <= -statistics.median(appo), (sac, appo)
