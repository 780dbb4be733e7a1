"""Metrics of a run: TensorBoard event files, the progress display and summary.json.

The x axis of every TensorBoard curve is the env step count consumed by the learner, so a
resumed run continues its curves where the checkpoint left them (SummaryWriter purge_step
drops the points written after that checkpoint).
"""
from __future__ import annotations

import collections
import json
import math
import os
import time
from typing import Any, Iterable

import numpy as np

from rlfarm.experiments.progress import Progress

TAGS: dict[str, str] = {
    "charts/episode_return_mean": "mean return of the last log.return_window episodes",
    "charts/episode_length_mean": "mean length of the same episodes",
    "perf/env_steps_per_s": "env steps consumed by the learner per second of wall time, since the last point",
    "perf/learner_samples_per_s": "samples per second through the learner update (all epochs)",
    "perf/sample_ms": "time the farm waited for the batch's fragments, per update",
    "perf/update_ms": "time of one learner update plus publishing weights",
    "losses/policy": "clipped surrogate loss",
    "losses/value": "value loss",
    "losses/entropy": "mean policy entropy",
    "losses/approx_kl": "approximate KL(old || new), (ratio - 1) - log ratio",
    "losses/clip_fraction": "fraction of samples whose ratio was clipped",
    "losses/explained_variance": "1 - Var(returns - values) / Var(returns)",
    "system/rss_mb": "resident memory of the driver process (VmRSS)",
    "system/cpu_s_per_million_steps": "driver CPU seconds (user + system) per million env steps",
    "perf/runner_restarts": "runners replaced after dying (cumulative)",
    "perf/dropped_fragments": "fragments dropped as too stale (cumulative)",
    "perf/env_errors": "env copies reset after a bad state or an exception (cumulative)",
    "losses/grad_norm": "gradient norm before clipping",
    "learner/lr": "the learning rate of the last update (annealed when algo.anneal_lr)",
    "learner/clip_range": "the ratio clip range of the last update (annealed when algo.anneal_clip)",
    "learner/epochs": "epochs the last update ran (fewer than algo.epochs after a target_kl stop)",
    "perf/runner_env_steps_per_s": "env steps per second of a runner's own env-step time",
    "perf/runner_inference_ms_per_fragment": "policy inference time per fragment in the runners",
    # Written by the Ray farm (cluster/ray_farm.py) only:
    "perf/env_steps_sampled_per_s": "env steps the runners delivered per second (consumed or not)",
    "perf/env_step_ms": "env step time per env row, mean over runners (per runner: .../runner_<i>)",
    "perf/inference_ms": "policy inference time per env row, mean over runners (per runner: .../runner_<i>)",
    "perf/env_step_ms/runner_<i>": "env step time per env row in runner i",
    "perf/inference_ms/runner_<i>": "policy inference time per env row in runner i",
    "perf/inflight_fragments": "fragments requested and not yet consumed or dropped, at the update",
    "perf/inflight_fragments_max": "the most fragments in flight at once so far (bound: runners x max_inflight)",
    "perf/policy_lag_mean": "mean policy versions between a batch's fragments and the learner",
    "perf/policy_lag_max": "largest policy lag in the batch",
    "perf/lost_fragments": "fragments lost with a dead runner or node (cumulative)",
    "perf/fragment_mb": "size of one fragment in the object store",
    "perf/object_store_mb": "object store memory in use, cluster-wide",
    "perf/object_store_spilled_mb": "object store bytes spilled to disk, cluster-wide (should stay 0)",
    "perf/learner_update_ms": "time of one learner update inside the learner actor",
    "system/rss_mb/driver": "resident memory of the driver without shared memory (RssAnon + RssFile)",
    "system/rss_mb/runner_<i>": "the same for runner i's actor",
    "system/rss_mb/learner_<rank>": "the same for learner rank's actor",
    "system/gpu_mem_gb": "peak GPU memory allocated by learner 0 (CUDA only)",
    "system/gpu_joules_per_million_steps": "learner 0's GPU energy per million env steps (CUDA with nvidia-ml-py)",
}
"""Stable TensorBoard scalar tags (the README quotes this list); `<i>` stands for an index.
Metrics a learner adds beyond these are written under their own names."""


def documented(tag: str) -> bool:
    """True when `tag` is in TAGS, reading `<i>` and `<rank>` there as any index."""
    import re

    return any(re.fullmatch(re.escape(known).replace(re.escape("<i>"), r"\d+")
                            .replace(re.escape("<rank>"), r"\d+"), tag) for known in TAGS)

TEXT_TAGS: dict[str, str] = {"config": "the resolved config.yaml of the run"}

_FARM_COUNTERS = ("runner_restarts", "dropped_fragments", "env_errors")


def rss_mb() -> float:
    """Resident set size of this process, from /proc (psutil is not a dependency)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def process_age_s() -> float | None:
    """Seconds since this process started (Linux), so summaries can include interpreter start-up."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime:
            up = float(uptime.read().split()[0])
        return up - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def preload_event_writer() -> None:
    """Import TensorBoard's event writer now (0.2-0.3 s of imports), for a driver that has
    a moment to spare: `rlfarm train` does it while Ray starts on another thread."""
    from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: F401
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401


class EventWriter:
    """The part of torch's SummaryWriter we use (scalars, text, purge_step), on TensorBoard's
    own event-file writer: the same records, without importing torch (~2 s), which a Ray-mode
    driver otherwise never needs."""

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event_pb2 = event_pb2
        self._writer = EventFileWriter(log_dir)
        if purge_step is not None:  # as SummaryWriter: TensorBoard drops later points from older files
            self._writer.add_event(event_pb2.Event(step=purge_step, file_version="brain.Event:2",
                                                   wall_time=time.time()))
            self._writer.add_event(event_pb2.Event(
                step=purge_step, wall_time=time.time(),
                session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def _add(self, value: Any, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(value=[value])
        self._writer.add_event(self._event_pb2.Event(summary=summary, step=int(step), wall_time=time.time()))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2

        self._add(summary_pb2.Summary.Value(tag=tag, simple_value=float(value)), step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2
        from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData

        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="text", content=TextPluginData(version=0).SerializeToString()))
        tensor = tensor_pb2.TensorProto(
            dtype="DT_STRING", string_val=[text.encode("utf-8")],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]))
        self._add(summary_pb2.Summary.Value(tag=f"{tag}/text_summary", metadata=metadata, tensor=tensor), step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class Monitor:
    """Collects `farm.iterate()` results; writes TensorBoard points every `report_interval_s`."""

    def __init__(self, run_dir: str, *, config_text: str | None, report_interval_s: float,
                 return_window: int, total_env_steps: int = 0, progress: str = "auto",
                 start_env_steps: int = 0, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.run_dir = run_dir
        self.report_interval_s = float(report_interval_s)
        self.total_env_steps = int(total_env_steps or 0)
        self.returns: collections.deque = collections.deque(state.get("returns", ()), maxlen=return_window)
        self.lengths: collections.deque = collections.deque(state.get("lengths", ()), maxlen=return_window)
        self.episodes = int(state.get("episodes", 0))
        self.solved_at_env_steps: int | None = state.get("solved_at_env_steps")
        """Env steps at which the return window first reached stop.target_return (None: not yet)."""
        self.wall_before = float(state.get("wall_s", 0.0))
        """Training seconds of the run's earlier segments (before a resume)."""
        self.env_steps = self.start_env_steps = int(start_env_steps)
        self.counters = {name: 0 for name in _FARM_COUNTERS}
        # purge_step makes TensorBoard discard points a crashed segment wrote after the checkpoint.
        self.writer = EventWriter(run_dir, purge_step=start_env_steps or None)
        if config_text is not None:
            # four spaces: TensorBoard renders text as markdown, this keeps the YAML a code block
            self.writer.add_text("config", "    " + config_text.replace("\n", "\n    "), start_env_steps)
        self.progress = Progress(progress, total_env_steps)
        self._pending: dict[str, list[float]] = collections.defaultdict(list)
        self._start = time.perf_counter()
        self._last_time, self._last_steps, self._last_cpu = self._start, self.env_steps, _cpu_s()
        self.eta_s: float | None = None

    # ---- recording ---------------------------------------------------------------------
    def record(self, result: dict[str, Any]) -> None:
        """Take one `farm.iterate()` result; reports when `report_interval_s` has passed."""
        self.env_steps = int(result["env_steps"])
        returns = np.asarray(result.get("episode_returns", ()), dtype=np.float64)
        self.returns.extend(returns.tolist())
        self.lengths.extend(np.asarray(result.get("episode_lengths", ()), dtype=np.int64).tolist())
        self.episodes += len(returns)
        for name in _FARM_COUNTERS:
            if name in result:
                self.counters[name] = int(result[name])
        for key, value in result.items():
            if "/" in key and isinstance(value, (int, float, np.floating, np.integer)):
                self._pending[key].append(float(value))
        if time.perf_counter() - self._last_time >= self.report_interval_s:
            self.report()

    def report(self, final: bool = False) -> None:
        """Write one TensorBoard point per tag at the current env step and refresh the progress."""
        now, cpu = time.perf_counter(), _cpu_s()
        step, steps_done = self.env_steps, self.env_steps - self._last_steps
        steps_per_s = steps_done / max(now - self._last_time, 1e-9)
        scalars: dict[str, float] = {key: float(np.mean(values)) for key, values in self._pending.items()}
        scalars.pop("perf/env_steps_per_s", None)  # the monitor's own wall-clock figure wins
        if steps_done > 0:
            scalars["perf/env_steps_per_s"] = steps_per_s
            scalars["system/cpu_s_per_million_steps"] = (cpu - self._last_cpu) / steps_done * 1e6
        if self.returns:
            scalars["charts/episode_return_mean"] = self.return_mean
            scalars["charts/episode_length_mean"] = float(np.mean(self.lengths))
        scalars["system/rss_mb"] = rss_mb()
        for name, value in self.counters.items():
            scalars[f"perf/{name}"] = float(value)  # the latest count, not a mean
        for tag, value in scalars.items():
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, step)
        self._pending.clear()
        self.eta_s = self._eta(steps_per_s)
        if final:  # the whole segment's speed, not the last few milliseconds'
            steps_per_s = (step - self.start_env_steps) / max(now - self._start, 1e-9)
        self.progress.update(step, steps_per_s, self.return_mean if self.returns else None,
                             self.eta_s, final=final)
        self._last_time, self._last_steps, self._last_cpu = now, step, cpu

    def _eta(self, steps_per_s: float) -> float | None:
        if not self.total_env_steps or steps_per_s <= 0:
            return None
        return max(self.total_env_steps - self.env_steps, 0) / steps_per_s

    # ---- queries -----------------------------------------------------------------------
    @property
    def return_mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def window_full(self) -> bool:
        return len(self.returns) == self.returns.maxlen

    @property
    def segment_wall_s(self) -> float:
        """Seconds of training in this process."""
        return time.perf_counter() - self._start

    @property
    def wall_s(self) -> float:
        """Seconds of training over the whole run, resumed segments included."""
        return self.wall_before + self.segment_wall_s

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps so a resumed run reports the same window and clock."""
        return {"returns": [float(r) for r in self.returns], "lengths": [int(n) for n in self.lengths],
                "episodes": self.episodes, "wall_s": self.wall_s,
                "solved_at_env_steps": self.solved_at_env_steps}

    def summary(self, exit_reason: str, solved: bool, last_checkpoint: str | None,
                **extra: Any) -> dict[str, Any]:
        segment_s = self.segment_wall_s
        return {
            "env_steps": self.env_steps,
            "wall_s": round(self.wall_s, 3),
            "env_steps_per_s": round((self.env_steps - self.start_env_steps) / max(segment_s, 1e-9), 1),
            "episode_return_mean": self.return_mean if self.returns else None,
            "episodes": self.episodes,
            "solved": bool(solved),
            "solved_at_env_steps": self.solved_at_env_steps,
            **self.counters,
            "exit_reason": exit_reason,
            "last_checkpoint": last_checkpoint,
            **extra,
        }

    def close(self) -> None:
        self.progress.close()
        self.writer.close()


def write_summary(run_dir: str, summary: dict[str, Any]) -> str:
    path = os.path.join(run_dir, "summary.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as stream:
        json.dump(_finite(summary), stream, indent=2)
        stream.write("\n")
    os.replace(tmp, path)
    return path


def _finite(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_scalars(run_dir: str, tags: Iterable[str] | None = None) -> dict[str, list[tuple[int, float]]]:
    """Read a run's scalars back with tensorboard's EventAccumulator: {tag: [(step, value)]}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    wanted = set(tags) if tags is not None else set(accumulator.Tags()["scalars"])
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"] if tag in wanted}
