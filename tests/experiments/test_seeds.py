"""`rlfarm seeds`: seed lists, the stay threshold, and a small two-seed run end to end; and
`stop.continue_after_target`, which the command relies on, through `rlfarm train`.

The targets here are easy on purpose (a random CartPole policy's episodes last about 22 steps):
these tests check the bookkeeping, not learning (tests/experiments/test_learning.py does that).
"""
from __future__ import annotations

import csv

import pytest

from rlfarm.experiments.bench.seeds import default_stay_return, parse_seeds
from rlfarm.experiments.cli import main as cli_main
from rlfarm.experiments.errors import ConfigError

from .conftest import only_run_dir, read_summary

EASY = {"stop": {"env_steps": 2048, "target_return": 10.0}, "log": {"return_window": 10}}


def test_parse_seeds_ranges_and_lists():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5, 0-1,1") == [0, 1, 5]
    for bad in ("3-1", "a", "-2", "1,,2", ""):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)


def test_default_stay_return_is_5_percent_below_the_target_rounded_down_to_10():
    assert default_stay_return(475) == 450
    assert default_stay_return(-200) == -210


def test_continue_after_target_records_the_first_solve_and_runs_to_env_steps(write_config, runs_dir, train):
    config = write_config(EASY)
    assert train(config, "stop.continue_after_target=true", "stop.env_steps=4096") == 0
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "env_steps" and summary["env_steps"] >= 4096, summary
    assert summary["solved"] and 0 < summary["solved_at_env_steps"] < summary["env_steps"], summary


def test_without_continue_the_run_stops_at_the_target_it_records(write_config, runs_dir, train):
    assert train(write_config(EASY)) == 0
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "target_return", summary
    assert summary["solved_at_env_steps"] == summary["env_steps"], summary


@pytest.mark.slow
def test_seeds_runs_each_seed_and_writes_csv_json_and_plot(write_config, tmp_path, capsys):
    out = tmp_path / "seeds-out"
    code = cli_main(["seeds", str(write_config(EASY)), "--seeds", "0-1", "--workers", "2",
                     "--stay-steps", "3072", "--stay-return", "5", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    with open(out / "seeds.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["seed"] for row in rows] == ["0", "1"]
    for row in rows:
        assert row["exit_code"] == "0" and row["solved"] == "True" and row["stayed"] == "True", row
        assert int(row["solved_at_env_steps"]) <= 2048 and int(row["env_steps"]) >= 3072, row
        # the cost of the result: a whole process each, its CPU, joules where RAPL is readable
        assert float(row["wall_s"]) > 0 and float(row["cpu_core_s"]) > 0, row
        assert row["joules"] == "" or float(row["joules"]) >= 0, row
    # the two seeds are different runs, not one run reported twice
    assert rows[0]["final_return_mean"] != rows[1]["final_return_mean"], rows
    assert "within 2,048 env steps: 2/2" in printed and "stayed solved" in printed and ": 2/2" in printed
    assert "median CPU" in printed
    assert (out / "seeds.png").stat().st_size > 1000 and (out / "seeds.json").exists()


def test_seeds_bad_arguments_exit_2_with_one_line(write_config, tmp_path, capsys):
    config = str(write_config(EASY))
    cases = {("--seeds", "9-2"): "--seeds", ("--workers", "0"): "--workers",
             ("--set", "stop.target_return=null"): "stop.target_return"}
    for args, field in cases.items():
        assert cli_main(["seeds", config, "--out", str(tmp_path / "never"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and field in err, err
    assert not (tmp_path / "never").exists()
