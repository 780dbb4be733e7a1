"""What `rlfarm train` drives: a Farm gathers one batch, updates the learner, publishes weights.

The serial farm (cluster/serial.py) and the Ray farm (cluster/ray_farm.py) share this base:
the counters that go into checkpoints and summaries, the staleness rule, and the assembly
of the per-iteration result dict, so both report the same keys.
"""
from __future__ import annotations

import abc
import collections
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from rlfarm.agents.fragment import FragmentMeta
from rlfarm.cluster.config import FarmConfig

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.envs.config import EnvConfig

ENV_ERROR_WINDOW = 10
"""Updates over which `farm.max_env_error_rate` is measured."""


class EnvErrorRateExceeded(RuntimeError):
    """Env errors passed `farm.max_env_error_rate` of the env steps over the window: raised by
    the driver's loop on an iteration result that carries "stop_error" (after recording it)."""


# Counters that survive a resume; they travel in the checkpoint's `extra["farm"]`.
COUNTER_NAMES = ("env_steps", "iterations", "runner_restarts", "runner_timeouts", "dropped_fragments",
                 "env_errors")


class Farm(abc.ABC):
    """Base of every farm. Subclasses implement `iterate`, `close` and three learner hooks."""

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, farm_cfg: FarmConfig,
                 seed: int, total_env_steps: int | None) -> None:
        self.env_cfg = env_cfg
        self.policy_cfg = policy_cfg
        self.algo_cfg = algo_cfg
        self.farm_cfg = farm_cfg
        self.is_appo = getattr(algo_cfg, "name", "ppo") == "appo"
        self.is_off_policy = getattr(algo_cfg, "name", "ppo") in ("sac", "dqn")
        """SAC and DQN learn from a replay buffer: no fragment is too old for it."""
        self.seed = int(seed)
        self.total_env_steps = total_env_steps
        self.env_steps = 0
        """Env steps consumed by the learner (dropped fragments do not count)."""
        self.iterations = 0
        self.runner_restarts = 0
        self.runner_timeouts = 0
        """Runners replaced because they were silent past farm.runner_timeout_s (Ray mode)."""
        self.dropped_fragments = 0
        self.env_errors = 0
        self._error_window: collections.deque = collections.deque(maxlen=ENV_ERROR_WINDOW)
        """(env steps, env errors) of the last updates."""
        self.steps_per_fragment = int(farm_cfg.fragment_length) * int(env_cfg.envs_per_runner)
        self.batch_env_steps = int(farm_cfg.batch_size) or farm_cfg.num_runners * self.steps_per_fragment
        """Env steps per learner update; batch_size 0 means one fragment from every runner."""
        self.stop_poll: Any = None
        """Called by a farm whose waits are sliced (`polls_stops`) between slices, with
        `updating=True` while the learner updates; it raises to end the iteration (a deadline
        passed, a second Ctrl-C). None: nothing to poll."""

    polls_stops = False
    """True where the farm's waits call `stop_poll` between short slices, so that stops and
    deadlines are delivered there and never by a signal handler raising inside a call of the
    farm's runtime (Ray: an exception raised inside `ray.wait` corrupts the call)."""

    # ---- what subclasses provide ------------------------------------------------------
    @abc.abstractmethod
    def iterate(self) -> dict[str, Any]:
        """One learner update; returns the dict that `iteration_result` builds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop runners and learners; safe to call twice."""

    @abc.abstractmethod
    def _save_learner(self, path: str, extra: dict[str, Any], with_replay: bool = False) -> None:
        """Write the learner's checkpoint (model, optimizer, normalizer, RNG) plus `extra`
        (and an off-policy learner's replay buffer `with_replay`)."""

    @abc.abstractmethod
    def _load_learner(self, path: str) -> dict[str, Any]:
        """Restore the learner from `path`; returns the checkpoint's `extra`."""

    @abc.abstractmethod
    def _publish_weights(self) -> None:
        """Send the learner's current weights and normalizer to every runner."""

    def acting_weights(self) -> dict[str, Any] | None:
        """The weights the runners act with now (the learner's `get_weights()` dict: numpy
        arrays), for a driver that replays the policy without torch; None where the farm cannot
        hand them over cheaply (the caller then loads the checkpoint)."""
        return None

    # ---- shared behaviour -------------------------------------------------------------
    def save_checkpoint(self, path: str, extra: dict[str, Any] | None = None, with_replay: bool = False) -> None:
        """One file holding the learner's state, the farm counters and the caller's `extra`;
        `with_replay` adds an off-policy learner's replay buffer (log.checkpoint_replay)."""
        self._save_learner(str(path), {**(extra or {}), "farm": self.counters(),
                                       "replay_saved": bool(with_replay and self.is_off_policy)}, with_replay)

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        """Restore learner and counters, then hand the restored weights to the runners."""
        extra = self._load_learner(str(path))
        self.restore_counters(extra.get("farm", {}))
        self._publish_weights()
        return extra

    def counters(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTER_NAMES}

    def restore_counters(self, counters: dict[str, Any]) -> None:
        for name in COUNTER_NAMES:
            if name in counters:
                setattr(self, name, int(counters[name]))

    def is_stale(self, fragment_version: int, learner_version: int) -> bool:
        """A fragment to drop rather than learn from.

        APPO learns off-policy up to `max_lag` versions behind. PPO learns on-policy, so a
        fragment older than the runners' deliberate `artificial_lag` (0 unless testing) was
        made before a runner restart or a resume, and is dropped.
        """
        if self.is_off_policy:
            return False
        allowed = self.farm_cfg.max_lag if self.is_appo else self.farm_cfg.artificial_lag
        return int(learner_version) - int(fragment_version) > int(allowed)

    def iteration_result(self, metas: Sequence[FragmentMeta], learner_metrics: dict[str, float],
                         sample_s: float, update_s: float) -> dict[str, Any]:
        """Advance the counters by the consumed fragments' `metas` and build `iterate()`'s result."""
        steps = sum(m.num_steps for m in metas)
        self.env_steps += steps
        self.iterations += 1
        errors = sum(m.env_errors for m in metas)
        self.env_errors += errors
        returns = [np.asarray(m.episode_returns, np.float32) for m in metas]
        lengths = [np.asarray(m.episode_lengths, np.int32) for m in metas]
        env_ms = sum(m.env_ms for m in metas)
        inference_ms = sum(m.inference_ms for m in metas)
        result: dict[str, Any] = dict(learner_metrics)
        result.update({
            "env_steps": self.env_steps,
            "iteration": self.iterations,
            "batch_env_steps": steps,
            "episode_returns": np.concatenate(returns) if returns else np.zeros(0, np.float32),
            "episode_lengths": np.concatenate(lengths) if lengths else np.zeros(0, np.int32),
            "runner_restarts": self.runner_restarts,
            "runner_timeouts": self.runner_timeouts,
            "dropped_fragments": self.dropped_fragments,
            "env_errors": self.env_errors,
            "perf/sample_ms": 1000.0 * sample_s,
            "perf/update_ms": 1000.0 * update_s,
            # Per-runner env speed, from the runners' own clocks: comparable across farm modes.
            "perf/runner_env_steps_per_s": steps / max(env_ms / 1000.0, 1e-9),
            "perf/runner_inference_ms_per_fragment": inference_ms / max(len(metas), 1),
        })
        too_many = self._env_error_rate_message(steps, errors)
        if too_many:
            result["stop_error"] = too_many
        return result

    def _env_error_rate_message(self, steps: int, errors: int) -> str | None:
        """Why the run must stop when env errors passed farm.max_env_error_rate, else None."""
        self._error_window.append((steps, errors))
        window_steps = sum(s for s, _ in self._error_window)
        window_errors = sum(e for _, e in self._error_window)
        limit = self.farm_cfg.max_env_error_rate
        if window_steps and window_errors > limit * window_steps:
            return (f"env errors are {window_errors} of the last {window_steps} env steps "
                    f"({window_errors / window_steps:.0%}), above farm.max_env_error_rate={limit:g}; "
                    "the first error of each runner is shown above")
        return None

    def __enter__(self) -> "Farm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stopwatch:
    """`with watch: ...` accumulates seconds; the farms time sampling and updates with it."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start
