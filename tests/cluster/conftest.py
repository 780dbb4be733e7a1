"""Fixtures for the Ray farm tests: one Ray session per test module."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_local():
    """An embedded local Ray for the whole module, shut down after its last test.

    4 logical CPUs on the 2-core CI machine, so that 2 runners and 1-2 learners (1 CPU
    each) are all scheduled at once, as they are on a laptop-sized embedded run.
    """
    import ray

    from rlfarm.cluster.ray_session import start_ray

    if ray.is_initialized():  # a previous module's session leaked: start clean
        ray.shutdown()
    session = start_ray(num_cpus=4)
    yield session
    session.close()


@pytest.fixture
def cartpole():
    """Configs for small CartPole farms: `cartpole(algo="ppo", envs=64, **farm_fields)`
    returns (env_cfg, policy_cfg, algo_cfg, farm_cfg) with the README demo's hyperparameters."""
    from rlfarm import agents, envs
    from rlfarm.cluster import FarmConfig

    def make(algo: str = "ppo", envs_per_runner: int = 64, env_id: str = "rlfarm/CartPole-v1",
             env_kwargs: dict | None = None, algo_fields: dict | None = None, **farm_fields):
        env_cfg = envs.EnvConfig(id=env_id, envs_per_runner=envs_per_runner, kwargs=dict(env_kwargs or {}))
        algo_fields = {"lr": 2.5e-3, "epochs": 4, "minibatches": 4, "device": "cpu", **(algo_fields or {})}
        algo_cfg = agents.AlgoConfig(name=algo, **algo_fields)
        farm_fields = {"mode": "ray", "num_runners": 2, "fragment_length": 32, **farm_fields}
        return env_cfg, agents.PolicyConfig(hidden_sizes=[64, 64]), algo_cfg, FarmConfig(**farm_fields)

    return make


@pytest.fixture(scope="module")
def ray_with_faulty_envs():
    """Ray whose workers can import tests/cluster/faulty_env.py (workers inherit PYTHONPATH)."""
    import ray

    from rlfarm.cluster.ray_session import start_ray

    if ray.is_initialized():
        ray.shutdown()
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), previous) if p)
    session = start_ray(num_cpus=4)
    yield session
    session.close()
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


def write_tiny_ray_config(path: Path, name: str, log_dir: Path, **sections: dict[str, Any]) -> Path:
    """A tiny Ray-mode CartPole config for the end-to-end tests (8 envs, 16-step fragments,
    1024 env steps); `sections` update its sections one level deep ({"farm": {...}, ...})."""
    raw: dict[str, Any] = {
        "name": name, "seed": 0, "env": {"id": "rlfarm/CartPole-v1", "envs_per_runner": 8},
        "algo": {"epochs": 1, "minibatches": 1, "device": "cpu"},
        "farm": {"mode": "ray", "num_runners": 1, "fragment_length": 16},
        "stop": {"env_steps": 1024},
        "log": {"dir": str(log_dir), "report_interval_s": 0.5, "checkpoint_interval_s": 0},
    }
    for section, values in sections.items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
