"""demo_ab's own logic: how it imports each tree, and the ratios it prints (no demo is run)."""
from __future__ import annotations

import os

from rlfarm.experiments.bench import demo_ab


def _tree(root, cli_text: str) -> str:
    os.makedirs(root / "experiments")
    (root / "experiments" / "cli.py").write_text(cli_text)
    return str(root)


def test_package_layout_gets_an_rlfarm_link_and_the_first_release_its_own_tree(tmp_path):
    packaged = _tree(tmp_path / "new", "from rlfarm.experiments.errors import ConfigError\n")
    flat = _tree(tmp_path / "old", "from experiments.errors import ConfigError\n")
    new_side = demo_ab.side_for("new", packaged, str(tmp_path / "scratch"))
    old_side = demo_ab.side_for("old", flat, str(tmp_path / "scratch"))
    assert new_side.cli_module == "rlfarm.experiments.cli"
    assert os.path.realpath(os.path.join(new_side.pythonpath, "rlfarm")) == os.path.realpath(packaged)
    assert old_side.cli_module == "experiments.cli" and old_side.pythonpath == flat


def test_summary_gives_medians_and_both_ratios_and_skips_a_mode_with_a_failed_run():
    rows = [{"mode": "serial", "side": side, "wall_s": wall, "cpu_s": 1.0, "exit_code": 0}
            for side, wall in (("ref", 10.0), ("this", 9.0), ("ref", 12.0), ("this", 12.0), ("ref", 11.0),
                               ("this", 8.8))]
    rows += [{"mode": "ray", "side": "ref", "wall_s": 20.0, "cpu_s": 2.0, "exit_code": 0},
             {"mode": "ray", "side": "this", "wall_s": 5.0, "cpu_s": 2.0, "exit_code": 1}]
    serial, ray = demo_ab.summarize(rows, ["serial", "ray"], ("ref", "this"))[1:]
    # medians 11.0 and 9.0; pair ratios 0.9, 1.0, 0.8 -> median 0.9
    assert "11.00 (10.00-12.00)" in serial and "9.00 (8.80-12.00)" in serial
    assert "0.818x" in serial and "0.900x" in serial
    assert "no pairs" in ray
