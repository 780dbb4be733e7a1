"""`rlfarm scale`: the sweep section, and a tiny sweep (1 and 2 runners, about a second each)
that writes scaling.csv, scaling.md, scaling.png and a TensorBoard run with hparams per point."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from rlfarm.experiments.bench import scale
from rlfarm.experiments.cli import main
from rlfarm.experiments.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = """\
name: tiny-sweep
env: {{id: rlfarm/CartPole-v1, envs_per_runner: 16}}
algo: {{epochs: 1, minibatches: 1, device: cpu}}
farm: {{mode: {mode}, fragment_length: 16}}
stop: {{env_steps: 1000000}}
log: {{dir: {log_dir}}}
sweep: {{num_runners: [1, 2], seconds: 1.0, warmup_iterations: 1}}
"""


def tiny_config(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / f"sweep_{mode}.yaml"
    path.write_text(TINY.format(mode=mode, log_dir=tmp_path / "runs"))
    return path


def check_outputs(out: Path) -> list[dict]:
    rows = list(csv.DictReader((out / "scaling.csv").open()))
    assert [int(r["num_runners"]) for r in rows] == [1, 2]
    for row in rows:
        assert int(row["total_envs"]) == 16 * int(row["num_runners"])
        assert 1_000 < float(row["env_steps_per_s"]) < 1e8       # sane: measured, not zero or absurd
        assert float(row["learner_samples_per_s"]) > 0
        assert int(row["env_steps"]) > 0 and float(row["seconds"]) >= 1.0
    assert float(rows[0]["efficiency"]) == pytest.approx(1.0)
    efficiency = float(rows[1]["efficiency"])
    assert math.isfinite(efficiency) and 0.05 < efficiency < 3.0
    assert efficiency == pytest.approx(float(rows[1]["env_steps_per_s"]) / (2 * float(rows[0]["env_steps_per_s"])),
                                       rel=1e-6)

    table = (out / "scaling.md").read_text()
    assert "| runners | envs/runner | total envs | env steps/s | learner samples/s | efficiency |" in table
    assert "| 1 | 16 | 16 |" in table and "| 2 | 16 | 32 |" in table

    png = (out / "scaling.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for label in ("r1_e16_l1", "r2_e16_l1"):
        events = EventAccumulator(str(out / "tb" / label))
        events.Reload()
        assert "scale/env_steps_per_s" in events.Tags()["scalars"]
        assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
        final = events.Scalars("scale/env_steps_per_s")[-1].value
        row = rows[0] if label.startswith("r1") else rows[1]
        assert final == pytest.approx(float(row["env_steps_per_s"]), rel=0.05)
    return rows


@pytest.mark.slow
def test_tiny_sweep_serial_writes_all_outputs(tmp_path):
    out = tmp_path / "out"
    assert main(["scale", str(tiny_config(tmp_path, "serial")), "--out", str(out)]) == 0
    check_outputs(out)


@pytest.mark.slow
def test_tiny_sweep_on_the_ray_farm(tmp_path):
    """The real scaling path: each point is a Ray farm of 1 or 2 runner actors."""
    out = tmp_path / "out"
    assert main(["scale", str(tiny_config(tmp_path, "ray")), "--out", str(out)]) == 0
    rows = check_outputs(out)
    assert all(r["mode"] == "ray" for r in rows)


def test_shipped_configs_parse():
    for name in ("scaling_cartpole.yaml", "scaling_heat.yaml"):
        raw, sweep = scale.load_sweep(str(REPO / "experiments" / "configs" / name), [])
        points = scale.sweep_points(raw, sweep)
        assert [p.num_runners for p, _ in points] == [1, 2]
        assert sweep.seconds > 0


def test_sweep_overrides_apply():
    raw, sweep = scale.load_sweep(str(REPO / "experiments/configs/scaling_cartpole.yaml"),
                                  ["sweep.num_runners=[1, 2, 4]", "sweep.envs_per_runner=[64, 128]"])
    points = [p for p, _ in scale.sweep_points(raw, sweep)]
    assert [(p.envs_per_runner, p.num_runners) for p in points] == [
        (64, 1), (64, 2), (64, 4), (128, 1), (128, 2), (128, 4)]


@pytest.mark.parametrize("section, field", [
    (None, "sweep: missing"),
    ({"num_runners": [1], "runners": [2]}, "sweep.runners: unknown key"),
    ({"num_runners": [0, 1]}, "sweep.num_runners"),
    ({"num_runners": "many"}, "sweep.num_runners"),
    ({"num_runners": [1], "seconds": 0, "env_steps": 0}, "sweep: set seconds or env_steps"),
    ({"num_runners": [1], "seconds": -1}, "sweep.seconds"),
])
def test_bad_sweep_names_the_field(section, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[")):
        scale.parse_sweep(section)


def test_cli_bad_sweep_exits_2(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(TINY.format(mode="serial", log_dir=tmp_path).replace("seconds: 1.0", "secs: 1.0"))
    assert main(["scale", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "sweep.secs: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "o" / "scaling.csv").exists()


def test_nodes_axis_confines_runners_to_the_first_n_worker_nodes():
    raw, sweep = scale.load_sweep(str(REPO / "experiments/configs/scaling_cartpole.yaml"),
                                  ["sweep.num_runners=[2]", "sweep.nodes=[1, 2]"])
    points = scale.sweep_points(raw, sweep)
    assert [(p.nodes, cfg.farm.runner_resources["resources"]) for p, cfg in points] == [
        (1, {"rf_nodes_1": 1}), (2, {"rf_nodes_2": 1})]
    assert [p.label for p, _ in points] == ["r2_e256_l1_n1", "r2_e256_l1_n2"]
    # Node k advertises rf_nodes_N for every N >= k: a 1-node point never reaches node 2.
    assert scale.node_sweep_resources(1, [1, 2], slots=2) == {"rf_nodes_1": 2, "rf_nodes_2": 2}
    assert scale.node_sweep_resources(2, [1, 2], slots=2) == {"rf_nodes_2": 2}
    with pytest.raises(ConfigError, match="sweep.nodes"):
        scale.parse_sweep({"num_runners": [1], "nodes": [0]})
