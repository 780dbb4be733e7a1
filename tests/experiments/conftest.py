"""Fixtures for the experiments tests: small configs written to tmp dirs, the CLI in-process."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "experiments" / "configs"

SMALL_CARTPOLE: dict[str, Any] = {
    "name": "small-cartpole",
    "seed": 0,
    "env": {"id": "rlfarm/CartPole-v1", "envs_per_runner": 8},
    "model": {"hidden_sizes": [16, 16]},
    "algo": {"name": "ppo", "lr": 1e-3, "epochs": 1, "minibatches": 2, "device": "cpu"},
    "farm": {"mode": "serial", "num_runners": 2, "fragment_length": 16},
    "stop": {"env_steps": 2048},
    "log": {"report_interval_s": 0.01, "progress": "lines"},
}
"""A run of a second or two: two runners x 8 copies x 16 steps per update."""


def merge(base: dict, changes: dict) -> dict:
    """Deep-merge `changes` into a copy of `base`; a value of ... deletes the key."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(changes=None, text=None) -> path of a YAML config whose log.dir is tmp/runs."""
    counter = {"n": 0}

    def write(changes: dict | None = None, text: str | None = None, base: dict | None = None) -> Path:
        counter["n"] += 1
        path = tmp_path / f"config{counter['n']}.yaml"
        if text is None:
            data = merge(base or SMALL_CARTPOLE, {"log": {"dir": str(tmp_path / "runs")}})
            text = yaml.safe_dump(merge(data, changes or {}), sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLFARM_TORCH_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def only_run_dir(runs: Path) -> Path:
    """The single run dir that a test's `rlfarm train` created under `runs`."""
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_summary(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def train() -> Callable[..., int]:
    """train(config_path, *overrides, extra_args=()) -> exit code of `rlfarm train`, in-process."""
    from rlfarm.experiments.cli import main as cli_main

    def run(config: Path | None, *overrides: str, extra_args: tuple = ()) -> int:
        argv = ["train"] + ([str(config)] if config else [])
        for item in overrides:
            argv += ["--set", item]
        return cli_main(argv + list(extra_args))

    return run


TOOLS = Path(__file__).resolve().parents[2] / "experiments" / "tools"


def load_tool(name: str) -> Any:
    """A script of experiments/tools/ (not part of the installed package), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"rlfarm_tool_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
