"""experiments/tools/sb3_cost.py without training: the table of medians and argument errors
(the side-by-side runs themselves are a benchmark, docs/results/learning.md)."""
from __future__ import annotations

from .conftest import load_tool

sb3_cost = load_tool("sb3_cost")


def test_table_reports_medians_per_case_and_framework():
    rows = [{"env_steps": 20000, "solved_at_env_steps": None, "eval_return": r, "wall_s": w, "cpu_core_s": c,
             "joules": None, "reached": r >= -200} for r, w, c in ((-150.0, 10.0, 11.0), (-250.0, 30.0, 31.0),
                                                                   (-170.0, 20.0, 21.0))]
    text = sb3_cost.table({"sac-pendulum": {"rlfarm": rows, "sb3": rows[:1]}})
    lines = text.splitlines()
    assert lines[2] == "| sac-pendulum | rlfarm | 2/3 | 20,000 | -170.0 | 20.0 | 21.0 | n/a |"
    assert lines[3].startswith("| sac-pendulum | sb3 | 1/1 | 20,000 | -150.0 | 10.0 |")


def test_bad_arguments_exit_2(capsys):
    assert sb3_cost.main(["--cases", "a2c-acrobot"]) == 2
    assert "--cases" in capsys.readouterr().err
    assert sb3_cost.main(["--torch-threads", "0"]) == 2


def test_ratios_pair_each_seed_and_take_the_median():
    ours = [{"wall_s": 10.0, "cpu_core_s": 5.0}, {"wall_s": 30.0, "cpu_core_s": 9.0}, {"wall_s": 12.0, "cpu_core_s": 6.0}]
    theirs = [{"wall_s": 40.0, "cpu_core_s": 20.0}, {"wall_s": 60.0, "cpu_core_s": 30.0},
              {"wall_s": 24.0, "cpu_core_s": 12.0}]
    line = sb3_cost.ratios({"sac-pendulum": {"rlfarm": ours, "sb3": theirs}})
    assert line == ("sac-pendulum: rlfarm / SB3 wall time per seed 0.250, 0.500, 0.500, median 0.500; "
                    "CPU core-s median 0.300")
