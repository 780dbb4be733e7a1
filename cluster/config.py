"""The farm's own config: how many runners, how fragments flow, where actors land."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FarmConfig:
    """How experience is gathered and delivered to the learner(s)."""

    mode: str = "ray"
    """`ray` runs runners and learners as Ray actors; `serial` runs the same classes in one
    process without Ray (the debugging path and the reference the Ray path must match)."""

    num_runners: int = 2
    """Env runners; each owns one batched env with `env.envs_per_runner` copies."""

    fragment_length: int = 64
    """Steps T in one Fragment (T x envs_per_runner transitions)."""

    batch_size: int = 0
    """Env steps per learner update; 0 means one fragment from every runner
    (num_runners x fragment_length x envs_per_runner)."""

    max_inflight: int = 2
    """Fragments each runner may have requested but not yet delivered; bounds the object store."""

    max_lag: int = 4
    """APPO: fragments whose policy is more than this many versions behind are dropped."""

    artificial_lag: int = 0
    """Testing V-trace: runners act with the weights from this many versions ago."""

    num_learners: int = 1
    """Data-parallel learners (torch.distributed: NCCL on GPUs, gloo on CPU)."""

    runner_resources: dict[str, Any] = field(default_factory=lambda: {"num_cpus": 1})
    """Ray resources of one runner actor: num_cpus, num_gpus, and custom resources
    (e.g. {"num_cpus": 1, "resources": {"cpu_node": 0.01}}) to land runners on CPU nodes."""

    learner_resources: dict[str, Any] = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0})
    """Ray resources of one learner actor; num_gpus > 0 puts it on a GPU node."""

    max_runner_restarts: int = 10
    """Dead runners are replaced on their own seed stream up to this many times in a run."""

    address: str | None = None
    """Ray cluster to join; None starts an embedded local Ray (or uses $RAY_ADDRESS)."""
