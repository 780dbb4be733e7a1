"""The envs layer's config, composed by experiments/config.py from YAML."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EnvConfig:
    """Which env the runners make, how many copies each steps, and the env's own keywords."""

    id: str = "rlfarm/CartPole-v1"
    """Env id: a registered id (rlfarm's, gymnasium's, one from `imports` or from a package's
    `rlfarm.envs` entry point), or "package.module:attr" naming a BatchedEnv subclass, a
    gymnasium Env class or a factory (num_envs, **kwargs) -> VectorEnv (docs/envs.md)."""
    imports: list[str] = field(default_factory=list)
    """Modules every process imports before making the env (driver and each runner), so
    that their `gymnasium.register` calls take effect, e.g. ["mypkg.envs"]."""
    envs_per_runner: int = 1024
    """Copies stepped together by one runner, in one numpy call for rlfarm ids."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the env's constructor, e.g. {"grid_size": 32} for HeatControl."""
    vectorization: str = "sync"
    """For foreign gymnasium ids only: "sync" (one process) or "async" (one process per copy)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"env.id: expected a non-empty env id, got {self.id!r}")
        if isinstance(self.envs_per_runner, bool) or not isinstance(self.envs_per_runner, int) \
                or self.envs_per_runner < 1:
            raise ValueError(f"env.envs_per_runner: expected an int >= 1, got {self.envs_per_runner!r}")
        if not isinstance(self.imports, list) or not all(isinstance(m, str) and m for m in self.imports):
            raise ValueError(f"env.imports: expected a list of module names, got {self.imports!r}")
        if not isinstance(self.kwargs, dict):
            raise ValueError(f"env.kwargs: expected a mapping of keyword arguments, got {self.kwargs!r}")
        if self.vectorization not in ("sync", "async"):
            raise ValueError(f"env.vectorization: expected 'sync' or 'async', got {self.vectorization!r}")
