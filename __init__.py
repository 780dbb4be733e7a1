"""rlfarm: a reinforcement-learning environment farm.

The repository's top-level folders install as one package, so that nothing of ours lands in
site-packages under a generic name (a user's own `envs/` or `experiments/` folder cannot
shadow it):

    envs/         -> rlfarm.envs         numpy-batched gymnasium VectorEnvs, the registry
    agents/       -> rlfarm.agents       torch policies, PPO/APPO learners, checkpoints
    cluster/      -> rlfarm.cluster      runners, learners, the serial and Ray farms, SLURM
    experiments/  -> rlfarm.experiments  configs, the `rlfarm` CLI, monitoring, benchmarks

The mapping lives in pyproject.toml ([tool.setuptools] package-dir).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_config": "rlfarm.experiments.api",
    "train": "rlfarm.experiments.api",
    "evaluate": "rlfarm.experiments.api",
    "Run": "rlfarm.experiments.api",
    "Policy": "rlfarm.experiments.api",
    "TrainingError": "rlfarm.experiments.api",
    "ConfigError": "rlfarm.experiments.errors",
    "sweep": "rlfarm.experiments.launch.sweep",
}
"""The public API for scripts (docs/api.md). Loaded on first use, so that `import rlfarm.envs`
in a runner process does not pay for torch, TensorBoard or Ray Tune."""

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'rlfarm' has no attribute {name!r}")
