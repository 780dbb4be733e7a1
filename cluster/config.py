"""The farm's own config: how many runners, how fragments flow, where actors land.

FarmConfig validates itself on construction and raises ``ValueError("field: what is wrong")``,
so `experiments/config.py` can prefix the section ("farm.num_runners: ...") and print one line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FARM_MODES = ("serial", "ray")
"""`serial`: everything in one process, no Ray; `ray`: runners and learners as Ray actors."""

_AT_LEAST = {"num_runners": 1, "fragment_length": 1, "max_inflight": 1, "num_learners": 1,
             "batch_size": 0, "runner_slots": 0, "max_lag": 0, "artificial_lag": 0, "max_runner_restarts": 0}
"""The integer fields and their smallest allowed value."""


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
    (num_runners x fragment_length x envs_per_runner). The batch is part of the algorithm:
    launchers that fill an allocation keep it (see runner_slots)."""

    runner_slots: int = 0
    """Runner slots to fill (set by launchers: `rlfarm slurm`, hetjobs). 0: num_runners as
    written. N > 0: the config's copies (num_runners x env.envs_per_runner) and its batch stay
    as written and are spread over as many runners as fit, up to N, each with an equal share
    of the copies; more runners then fill the same batch sooner (strong scaling)."""

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

    runner_timeout_s: float = 0.0
    """A runner that owes a fragment for longer than this is killed and replaced on its seed
    stream (printed, counted in runner_timeouts). 0: automatic, the larger of 30 s and 20 times
    the slowest fragment so far (cluster/runner_pool.py); 3 times that before a runner's first
    fragment. Ray mode only."""

    max_env_error_rate: float = 0.5
    """Stop the run (exit 1) when env errors (copies reset after an exception, a bad state or
    NaN/Inf data) exceed this fraction of the env steps of the last ENV_ERROR_WINDOW updates."""

    address: str | None = None
    """Ray cluster to join; None starts an embedded local Ray (or uses $RAY_ADDRESS)."""

    py_modules: list[str] = field(default_factory=list)
    """Local package folders or .py files shipped to a Ray cluster's workers (runtime_env
    py_modules) with `rlfarm submit` and `--address`, besides what rlfarm finds itself: the
    env's own package and env.imports (cluster/launch/ship.py, docs/envs.md)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError("field: what is wrong") for the first field out of its range."""
        if self.mode not in FARM_MODES:
            raise ValueError(f"mode: must be one of {', '.join(FARM_MODES)}, got {self.mode!r}")
        for name, low in _AT_LEAST.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                hint = " (0: one fragment per runner)" if name == "batch_size" else ""
                raise ValueError(f"{name}: must be an integer >= {low}{hint}, got {value!r}")
        rate = self.max_env_error_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0:
            raise ValueError(f"max_env_error_rate: must be a number in (0, 1], got {rate!r}")
        timeout = self.runner_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout < float("inf"):
            raise ValueError(f"runner_timeout_s: must be a number of seconds >= 0 (0: automatic), got {timeout!r}")
        for name in ("runner_resources", "learner_resources"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name}: expected a mapping of Ray resources, got {getattr(self, name)!r}")
        if not isinstance(self.py_modules, list) or not all(isinstance(p, str) and p for p in self.py_modules):
            raise ValueError(f"py_modules: expected a list of paths (package folders or .py files), "
                             f"got {self.py_modules!r}")
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ValueError(f"address: expected a Ray address such as 'auto' or 'host:6379', got {self.address!r}")


def spread_over_slots(num_runners: int, envs_per_runner: int, fragment_length: int, batch_size: int,
                      slots: int) -> tuple[int, int, int]:
    """(num_runners, envs_per_runner, batch_size) that fill up to `slots` runners with the same
    learning: the same copies in all and the same env steps per update.

    The copies C = num_runners x envs_per_runner are split equally, so the runner count is the
    largest divisor of C not above `slots` (64 copies on 6 slots: 4 runners x 16 copies). The
    fragment length, hence every copy's trajectory segment and its GAE, is unchanged, and the
    batch (batch_size, or one fragment per runner as written) is pinned in env steps.
    """
    copies = num_runners * envs_per_runner
    batch = batch_size or copies * fragment_length
    if slots <= 0:
        return num_runners, envs_per_runner, batch_size
    runners = max(d for d in range(1, min(slots, copies) + 1) if copies % d == 0)
    return runners, copies // runners, batch
