"""The farm: runners that step batched envs, learner workers that update the policy, and the
pipeline that connects them, in one process (serial) or as Ray actors (ray).

Heavy pieces (torch, ray, the envs) load on first use, so that importing `cluster` for its
config dataclass stays cheap for `rlfarm --help`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlfarm.cluster.config import FARM_MODES, FarmConfig

if TYPE_CHECKING:  # pragma: no cover
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.cluster.farm_base import Farm
    from rlfarm.cluster.learner import LearnerWorker
    from rlfarm.cluster.runner import Runner
    from rlfarm.envs.config import EnvConfig

__all__ = ["FARM_MODES", "FarmConfig", "Runner", "LearnerWorker", "Farm", "make_farm"]


def make_farm(env_cfg: EnvConfig, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, farm_cfg: FarmConfig,
              seed: int, total_env_steps: int | None, runtime_env: dict | None = None) -> "Farm":
    """Build the farm that `farm_cfg.mode` names; `rlfarm train` drives it the same way either way."""
    if farm_cfg.mode == "serial":
        from rlfarm.cluster.serial import SerialFarm
        return SerialFarm(env_cfg, policy_cfg, algo_cfg, farm_cfg, seed, total_env_steps)
    if farm_cfg.mode == "ray":
        from rlfarm.cluster.ray_farm import RayFarm  # imports ray; only the Ray path pays for it
        return RayFarm(env_cfg, policy_cfg, algo_cfg, farm_cfg, seed, total_env_steps, runtime_env=runtime_env)
    raise ValueError(f"farm.mode: must be one of {', '.join(FARM_MODES)}, got {farm_cfg.mode!r}")


def __getattr__(name: str) -> Any:
    if name == "Runner":
        from rlfarm.cluster.runner import Runner
        return Runner
    if name == "LearnerWorker":
        from rlfarm.cluster.learner import LearnerWorker
        return LearnerWorker
    if name == "Farm":
        from rlfarm.cluster.farm_base import Farm
        return Farm
    raise AttributeError(f"module 'cluster' has no attribute {name!r}")
