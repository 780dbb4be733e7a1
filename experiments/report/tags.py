"""TensorBoard tag names of a run, grouped by the question a person asks of them.

- `charts/`: is it learning? (return, episode length, env steps per second)
- `farm/`: is the farm healthy? (policy lag, fragments in flight, restarts, drops, env errors)
- `perf/`, `losses/`, `learner/`, `system/`: where the time, the loss and the memory go
- `runner_<figure>/runner_<i>`: one group per per-runner figure, one card per runner

The farms' `iterate()` results keep their own keys (`perf/policy_lag_max`, ...); the monitor
maps them to these tags through `RENAMED` (docs/metrics.md is generated from both tables).
"""
from __future__ import annotations

import re

TAGS: dict[str, str] = {
    "charts/episode_return_mean": "mean return of the last log.return_window episodes",
    "charts/episode_length_mean": "mean length of the same episodes",
    "charts/env_steps_per_s": "env steps consumed by the learner per second of wall time, since the last point",
    "farm/policy_lag_mean": "mean policy versions between a batch's fragments and the learner (APPO, Ray)",
    "farm/policy_lag_max": "largest policy lag in the batch",
    "farm/inflight_fragments": "fragments requested and not yet consumed or dropped, at the update (Ray)",
    "farm/inflight_fragments_max": "the most fragments in flight at once so far (bound: runners x max_inflight)",
    "farm/runner_restarts": "runners replaced after dying or timing out (cumulative)",
    "farm/runner_timeouts": "runners replaced after owing a fragment past farm.runner_timeout_s (cumulative, Ray)",
    "farm/dropped_fragments": "fragments dropped as too stale (cumulative)",
    "farm/lost_fragments": "fragments lost with a dead runner or node (cumulative, Ray)",
    "farm/env_errors": "env copies reset after a bad state or an exception (cumulative)",
    "farm/skipped_updates": "learner updates rolled back for a NaN/Inf loss or gradient (cumulative)",
    "farm/object_store_mb": "object store memory in use, cluster-wide (Ray)",
    "farm/object_store_spilled_mb": "object store bytes spilled to disk, cluster-wide (should stay 0)",
    "perf/learner_samples_per_s": "samples per second through the learner update (all epochs)",
    "perf/sample_ms": "time the farm waited for the batch's fragments, per update",
    "perf/update_ms": "time of one learner update plus publishing weights",
    "perf/learner_update_ms": "time of one learner update inside the learner actor (Ray)",
    "perf/env_steps_sampled_per_s": "env steps the runners delivered per second, consumed or not (Ray)",
    "perf/runner_env_steps_per_s": "env steps per second of a runner's own env-step time",
    "perf/runner_inference_ms_per_fragment": "policy inference time per fragment in the runners",
    "perf/env_step_ms": "env step time per env row, mean over runners (Ray)",
    "perf/inference_ms": "policy inference time per env row, mean over runners (Ray)",
    "runner_env_step_ms/runner_<i>": "env step time per env row in runner i (Ray, 2+ runners)",
    "runner_inference_ms/runner_<i>": "policy inference time per env row in runner i (Ray, 2+ runners)",
    "runner_rss_mb/runner_<i>": "resident memory of runner i's actor, MB (Ray, 2+ runners)",
    "losses/policy": "clipped surrogate loss",
    "losses/value": "value loss",
    "losses/entropy": "mean policy entropy",
    "losses/approx_kl": "approximate KL(old || new), (ratio - 1) - log ratio",
    "losses/clip_fraction": "fraction of samples whose ratio was clipped",
    "losses/explained_variance": "1 - Var(returns - values) / Var(returns)",
    "losses/grad_norm": "gradient norm before clipping",
    "learner/lr": "the learning rate of the last update (annealed when algo.anneal_lr)",
    "learner/clip_range": "the ratio clip range of the last update (annealed when algo.anneal_clip)",
    "learner/epochs": "epochs the last update ran (fewer than algo.epochs after a target_kl stop)",
    "losses/q1": "SAC: first critic's mean squared soft Bellman error, mean over the update's gradient steps",
    "losses/q2": "SAC: second critic's, the same",
    "losses/actor": "SAC: actor loss, mean of alpha log pi - min Q",
    "losses/alpha": "SAC: temperature loss, mean of -log alpha (log pi + target entropy)",
    "losses/q": "DQN: Huber loss of Q against the double-DQN n-step target",
    "learner/alpha": "SAC: the entropy temperature alpha",
    "learner/entropy": "SAC: the policy's entropy estimate, mean of -log pi on replayed obs",
    "learner/q_mean": "SAC/DQN: mean Q(s, a) of the replayed transitions",
    "learner/epsilon": "DQN: the exploration rate of the schedule (runner 0's, with algo.runner_epsilons)",
    "learner/replay_fill": "SAC/DQN: replay buffer fill, transitions held / algo.replay_size",
    "learner/replay_size": "SAC/DQN: transitions held in the replay buffer",
    "learner/gradient_steps": "SAC/DQN: gradient steps so far (cumulative, resumed segments included)",
    "learner/updates_per_env_step": "SAC/DQN: gradient steps per env step consumed, over the run "
                                    "(algo.updates_per_step once past learning_starts)",
    "system/rss_mb": "resident memory of the driver without shared memory (RssAnon + RssFile), MB",
    "system/rss_mb/learner_<rank>": "the same for learner rank's actor (Ray)",
    "system/cpu_s_per_million_steps": "driver CPU seconds (user + system) per million env steps",
    "system/cpu_joules_per_million_steps": "CPU package energy (RAPL, whole package: every process "
                                           "on the socket) per million env steps, where readable",
    "system/gpu_mem_gb": "peak GPU memory allocated by learner 0 (CUDA only)",
    "system/gpu_joules_per_million_steps": "learner 0's GPU energy per million env steps (CUDA with nvidia-ml-py)",
    "final/return": "the run's last episode_return_mean (one point, at the end; an HPARAMS metric)",
    "final/env_steps_per_s": "env steps per second over the segment (one point; an HPARAMS metric)",
    "final/solved": "1 when the run reached stop.target_return, else 0 (an HPARAMS metric)",
    "final/wall_s": "seconds of training, resumed segments included (an HPARAMS metric)",
}
"""Stable TensorBoard scalar tags; `<i>` stands for a runner index, `<rank>` for a learner rank.
Metrics a learner adds beyond these are written under their own names."""

RENAMED: dict[str, str | None] = {
    "perf/env_steps_per_s": "charts/env_steps_per_s",
    **{f"perf/{name}": f"farm/{name}" for name in (
        "policy_lag_mean", "policy_lag_max", "inflight_fragments", "inflight_fragments_max",
        "runner_restarts", "runner_timeouts", "dropped_fragments", "lost_fragments", "env_errors", "skipped_updates",
        "object_store_mb", "object_store_spilled_mb")},
    "perf/env_step_ms/runner_<i>": "runner_env_step_ms/runner_<i>",
    "perf/inference_ms/runner_<i>": "runner_inference_ms/runner_<i>",
    "system/rss_mb/runner_<i>": "runner_rss_mb/runner_<i>",
    "system/rss_mb/driver": None,
    "perf/fragment_mb": None,
}
"""Old tag (and farm result key) -> new tag; None: no longer a curve (system/rss_mb/driver
duplicated system/rss_mb; perf/fragment_mb is a constant, now `fragment_mb` in summary.json)."""

CUMULATIVE: frozenset[str] = frozenset({
    "farm/runner_restarts", "farm/runner_timeouts", "farm/dropped_fragments", "farm/lost_fragments",
    "farm/env_errors", "farm/skipped_updates", "farm/inflight_fragments_max", "learner/gradient_steps"})
"""Counters and running maxima: a report's point is the latest value, not the mean of the
updates since the last report (a mean of a counter lags it, by a report's worth)."""

TEXT_TAGS: dict[str, str] = {
    "config": "the resolved config, block style, with only the algo keys that apply",
    "summary": "summary.json of the run, written at its end",
}

IMAGE_TAGS: dict[str, str] = {
    "physics/episode": "env.render() of copy 0's last recorded episode: u(x, t) for KS, "
                       "temperature beside target for HeatControl (at each checkpoint, every log.checkpoint_interval_s, and at the end)",
}

CUSTOM_SCALARS: dict[str, dict[str, list[str]]] = {
    "Is it learning?": {"return": [r"charts/episode_return_mean"],
                        "episode length": [r"charts/episode_length_mean"],
                        "env steps/s": [r"charts/env_steps_per_s"]},
    "Is the farm healthy?": {"policy lag": [r"farm/policy_lag_.*"],
                             "fragments in flight": [r"farm/inflight_fragments.*"],
                             "faults (cumulative)": [r"farm/runner_restarts", r"farm/runner_timeouts",
                                                     r"farm/dropped_fragments",
                                                     r"farm/lost_fragments", r"farm/env_errors",
                                                     r"farm/skipped_updates"]},
    "Runners": {"env step ms": [r"runner_env_step_ms/.*"], "inference ms": [r"runner_inference_ms/.*"]},
}
"""The Custom Scalars page: category -> chart title -> tag regexes drawn on one chart."""

_PER_RUNNER = re.compile(r"(.+)/runner_(\d+)$")


def _pattern(tag: str) -> str:
    return re.escape(tag).replace(re.escape("<i>"), r"\d+").replace(re.escape("<rank>"), r"\d+")


_KNOWN = re.compile("|".join(f"(?:{_pattern(tag)})" for tag in TAGS))


def documented(tag: str) -> bool:
    """True when `tag` is in TAGS, reading `<i>` and `<rank>` there as any index."""
    return _KNOWN.fullmatch(tag) is not None


def tensorboard_tag(key: str) -> str | None:
    """The tag a farm result key is written under, or None when it is not a curve."""
    if key in RENAMED:
        return RENAMED[key]
    per_runner = _PER_RUNNER.match(key)
    if per_runner:
        generic = f"{per_runner.group(1)}/runner_<i>"
        if generic in RENAMED:
            return RENAMED[generic].replace("<i>", per_runner.group(2))  # type: ignore[union-attr]
    return key
