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

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what editors and type checkers resolve `rlfarm.train` etc. to
    from rlfarm.experiments.api import Policy, Run, TrainingError, evaluate, load_config, train
    from rlfarm.experiments.errors import ConfigError
    from rlfarm.experiments.launch.sweep import sweep

__all__ = ["ConfigError", "Policy", "Run", "TrainingError", "evaluate", "load_config", "sweep", "train"]
"""The public API for scripts (docs/api.md). Loaded on first use, so that `import rlfarm.envs`
in a runner process does not pay for torch, TensorBoard or Ray Tune."""


def __getattr__(name: str) -> Any:
    if name in ("load_config", "train", "evaluate", "Run", "Policy", "TrainingError"):
        from rlfarm.experiments import api

        return getattr(api, name)
    if name == "ConfigError":
        from rlfarm.experiments.errors import ConfigError

        return ConfigError
    if name == "sweep":
        from rlfarm.experiments.launch.sweep import sweep

        return sweep
    raise AttributeError(f"module 'rlfarm' has no attribute {name!r}")
