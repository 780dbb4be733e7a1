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
