"""Typed configs: shipped configs load and round-trip; malformed ones fail with one line,
exit code 2, the field named, and nothing written."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from rlfarm.experiments.cli import main as cli_main
from rlfarm.experiments.config import ExperimentConfig, StopConfig, dump_config, load_config
from rlfarm.experiments.errors import ConfigError

from .conftest import CONFIG_DIR, SMALL_CARTPOLE

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_loads_and_round_trips(path, tmp_path):
    raw = yaml.safe_load(path.read_text())
    if "sweep" in raw:  # a scaling config: `rlfarm scale` reads the sweep, the rest is an experiment
        raw.pop("sweep")
        path = tmp_path / path.name
        path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig) and cfg.name
    dumped = tmp_path / "config.yaml"
    dumped.write_text(dump_config(cfg))
    assert load_config(dumped) == cfg  # the resolved config.yaml repeats the run


def test_the_five_issue_configs_ship():
    names = {p.name for p in SHIPPED}
    for name in ("cartpole_ppo.yaml", "cartpole_appo.yaml", "pendulum_ppo.yaml", "heat_ppo.yaml", "ks_appo.yaml"):
        assert name in names


def test_sections_become_the_layers_dataclasses(write_config):
    from rlfarm import agents, cluster, envs

    cfg = load_config(write_config())
    assert isinstance(cfg.env, envs.EnvConfig) and cfg.env.envs_per_runner == 8
    assert isinstance(cfg.model, agents.PolicyConfig) and cfg.model.hidden_sizes == [16, 16]
    assert isinstance(cfg.algo, agents.AlgoConfig) and cfg.algo.lr == 1e-3
    assert isinstance(cfg.farm, cluster.FarmConfig) and cfg.farm.num_runners == 2
    assert isinstance(cfg.stop, StopConfig) and cfg.stop.env_steps == 2048


def test_overrides_parse_values_as_yaml(write_config):
    cfg = load_config(write_config(), [
        "algo.lr=3e-4", "seed=7", "algo.anneal_lr=false", "model.hidden_sizes=[32, 8]",
        "env.kwargs.foo=1.5", "stop.target_return=475", "farm.mode=serial", "name=other"])
    assert cfg.algo.lr == pytest.approx(3e-4) and isinstance(cfg.algo.lr, float)
    assert cfg.seed == 7 and cfg.algo.anneal_lr is False
    assert cfg.model.hidden_sizes == [32, 8]
    assert cfg.env.kwargs == {"foo": 1.5}
    assert cfg.stop.target_return == 475.0 and cfg.name == "other"


def test_defaults_fill_missing_sections(write_config):
    cfg = load_config(write_config(text="env: {id: rlfarm/CartPole-v1}\n"))
    assert cfg.farm.mode == "ray"  # FarmConfig's default; shipped configs may say serial
    assert cfg.algo == type(cfg.algo)() and cfg.stop == StopConfig()
    assert cfg.name.startswith("config")  # from the file name


def test_integers_written_as_floats_or_exponents_are_accepted(write_config):
    cfg = load_config(write_config({"stop": {"env_steps": "5e5"}, "env": {"envs_per_runner": 16.0}}))
    assert cfg.stop.env_steps == 500000 and cfg.env.envs_per_runner == 16


# (changes to the small config, or raw text, or --set overrides) -> text the message must hold
MALFORMED = {
    "unknown top-level key": ({"nmae": "x"}, None, [], ["nmae", "did you mean 'name'"]),
    "unknown algo key": ({"algo": {"lrr": 0.1}}, None, [], ["algo.lrr", "did you mean 'lr'"]),
    "unknown farm key": ({"farm": {"num_runner": 2}}, None, [], ["farm.num_runner", "num_runners"]),
    "unknown stop key via --set": ({}, None, ["stop.env_step=5"], ["stop.env_step", "env_steps"]),
    "lr is a word": ({"algo": {"lr": "fast"}}, None, [], ["algo.lr", "number"]),
    "envs_per_runner fractional": ({"env": {"envs_per_runner": 1.5}}, None, [], ["env.envs_per_runner", "integer"]),
    "bool given as string": ({"algo": {"anneal_lr": "yes"}}, None, [], ["algo.anneal_lr", "true or false"]),
    "gamma above one": ({"algo": {"gamma": 1.5}}, None, [], ["algo.gamma"]),
    "negative lr via --set": ({}, None, ["algo.lr=-1e-3"], ["algo.lr"]),
    "zero runners": ({"farm": {"num_runners": 0}}, None, [], ["farm.num_runners", ">= 1"]),
    "bad farm mode": ({"farm": {"mode": "cluster"}}, None, [], ["farm.mode", "serial"]),
    "unknown env id": ({"env": {"id": "rlfarm/CartPol-v1"}}, None, [], ["env.id", "rlfarm/CartPole-v1"]),
    "section not a mapping": ({"algo": 3}, None, [], ["algo", "mapping"]),
    "negative hidden size": ({"model": {"hidden_sizes": [64, -1]}}, None, [], ["model.hidden_sizes"]),
    "hidden sizes not a list": ({"model": {"hidden_sizes": 64}}, None, [], ["model.hidden_sizes", "list"]),
    "unknown activation": ({"model": {"activation": "sigmoid"}}, None, [], ["model.activation"]),
    "negative stop.env_steps": ({"stop": {"env_steps": -5}}, None, [], ["stop.env_steps"]),
    "bad progress mode": ({"log": {"progress": "fancy"}}, None, [], ["log.progress"]),
    "invalid YAML": (None, "env: {id: [unclosed\n", [], ["invalid YAML", "line"]),
    "top level is a list": (None, "- 1\n- 2\n", [], ["top level", "mapping"]),
    "--set without =": ({}, None, ["algo.lr"], ["--set algo.lr", "KEY=VALUE"]),
    "--set inside a scalar": ({}, None, ["seed.x=1"], ["seed", "cannot set"]),
    "batch not a multiple of a fragment": ({"farm": {"batch_size": 100}}, None, [], ["farm.batch_size", "multiple"]),
    "lag above max_lag for appo": ({"algo": {"name": "appo"}, "farm": {"artificial_lag": 5, "max_lag": 4}},
                                   None, [], ["farm.artificial_lag", "max_lag"]),
    "unknown algorithm": ({"algo": {"name": "a2c"}}, None, [], ["algo.name", "ppo"]),
    "no stop condition": ({"stop": {"env_steps": 0}}, None, [], ["stop", "at least one"]),
    "negative seed": ({"seed": -1}, None, [], ["seed", ">= 0"]),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_config_exits_2_naming_the_field(case, write_config, runs_dir, capsys):
    changes, text, overrides, expected = MALFORMED[case]
    path = write_config(changes, text=text)
    argv = ["train", str(path)] + [arg for item in overrides for arg in ("--set", item)]
    if text is not None:
        argv += ["--run-dir", str(runs_dir / "r")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("rlfarm train: error: ")
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in err
    assert not runs_dir.exists()  # nothing written


def test_missing_config_file(tmp_path, capsys):
    assert cli_main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such config file" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["serial", "ray"])
def test_unknown_env_kwarg_is_named_before_anything_is_written(mode, write_config, runs_dir, capsys):
    # In Ray mode the env is built in a runner actor; the keyword must still be named in the
    # driver, before Ray starts, not surface as a dead actor.
    path = write_config({"env": {"kwargs": {"gravity_typo": 1.0}}, "farm": {"mode": mode}})
    assert cli_main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlfarm train: error: env.kwargs") and "gravity_typo" in err
    assert "\n" not in err and not runs_dir.exists()


def test_cli_process_prints_one_line_and_exit_code_2(write_config, runs_dir):
    path = write_config({"algo": {"gamma": 2.0}})
    proc = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "train", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "algo.gamma" in proc.stderr
    assert "Traceback" not in proc.stderr and not runs_dir.exists()


def test_config_error_is_a_value_error_with_the_path_first(write_config):
    with pytest.raises(ConfigError, match=r"^farm\.fragment_length: "):
        load_config(write_config({"farm": {"fragment_length": 0}}))


def test_small_config_is_valid(write_config):
    assert load_config(write_config()).env.id == SMALL_CARTPOLE["env"]["id"]
    assert yaml.safe_load(dump_config(load_config(write_config())))["farm"]["mode"] == "serial"
