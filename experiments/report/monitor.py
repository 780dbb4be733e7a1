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

from rlfarm.cluster.memory import rss_mb
from rlfarm.experiments.report.progress import Progress, Status
from rlfarm.experiments.report.tags import (  # noqa: F401
    CUMULATIVE,
    CUSTOM_SCALARS,
    RENAMED,
    TAGS,
    TEXT_TAGS,
    documented,
    tensorboard_tag,
)
from rlfarm.experiments.report.tb_summaries import (
    CpuEnergy,
    custom_scalars_value,
    hparams_end,
    hparams_start,
    image_value,
)

HEADLINE_POINTS = 50
"""A run logs its headline curves at least this many times (when it has that many updates):
the report interval starts short and grows to log.report_interval_s, so that TensorBoard's
outlier-ignoring y axis does not cut a short run's return curve."""
MIN_REPORT_INTERVAL_S = 0.05

_FARM_COUNTERS = ("runner_restarts", "runner_timeouts", "dropped_fragments", "env_errors", "skipped_updates")
"""Counts the summary carries; each is the result's key, or its perf/ key (the learner's)."""


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
    """Import TensorBoard's event writer now (a noticeable share of start-up), for a driver that has
    a moment to spare: `rlfarm train` does it while Ray starts on another thread."""
    from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: F401
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401


class EventWriter:
    """The part of torch's SummaryWriter we use (scalars, text, purge_step), on TensorBoard's
    own event-file writer: the same records, without importing torch (seconds), which a Ray-mode
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

    def add_scalars(self, scalars: dict[str, float], step: int) -> None:
        """All of a report's scalars as one event (one record to encode and write, not one per
        tag); TensorBoard reads each value of an event as its tag's point at `step`."""
        from tensorboard.compat.proto import summary_pb2

        if scalars:
            self.add_values([summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
                             for tag, value in scalars.items()], step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2
        from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData

        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="text", content=TextPluginData(version=0).SerializeToString()))
        tensor = tensor_pb2.TensorProto(
            dtype="DT_STRING", string_val=[text.encode("utf-8")],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]))
        self._add(summary_pb2.Summary.Value(tag=f"{tag}/text_summary", metadata=metadata, tensor=tensor), step)

    def add_values(self, values: Iterable[Any], step: int) -> None:
        """Write prepared Summary.Value records (hparams, images) as one event."""
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(value=list(values))
        self._writer.add_event(self._event_pb2.Event(summary=summary, step=int(step), wall_time=time.time()))

    def add_image(self, tag: str, rgb: Any, step: int) -> None:
        self.add_values([image_value(tag, rgb)], step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class Monitor:
    """Collects `farm.iterate()` results; writes TensorBoard points every `report_interval_s`."""

    def __init__(self, run_dir: str, *, config_text: str | None, report_interval_s: float,
                 return_window: int, total_env_steps: int = 0, progress: str = "auto",
                 start_env_steps: int = 0, state: dict[str, Any] | None = None,
                 target_return: float | None = None, hparams: dict[str, Any] | None = None,
                 wall_limit_s: float | None = None) -> None:
        state = state or {}
        self.run_dir = run_dir
        self.report_interval_s = float(report_interval_s)
        self.total_env_steps = int(total_env_steps or 0)
        self.wall_limit_s = wall_limit_s or None
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
            self.writer.add_text("config", code_block(config_text), start_env_steps)
        if hparams:
            self.writer.add_values(hparams_start(hparams), start_env_steps)
        self.writer.add_values([custom_scalars_value(CUSTOM_SCALARS)], start_env_steps)
        self.progress = Progress(progress, total_env_steps, target_return=target_return)
        self.cpu_energy = CpuEnergy()
        self.farm_figures: dict[str, float] = {"policy_lag": 0.0}
        """The latest farm figures the progress line shows (policy lag, ...)."""
        self._pending: dict[str, list[float]] = collections.defaultdict(list)
        self._tags: dict[str, str | None] = {}
        """Result key -> its TensorBoard tag (None: not a curve), looked up once per key."""
        self._start = time.perf_counter()
        self._last_time, self._last_steps, self._last_cpu = self._start, self.env_steps, _cpu_s()
        self.eta_s: float | None = None
        self._reported_once = False

    # ---- recording ---------------------------------------------------------------------
    def record(self, result: dict[str, Any]) -> None:
        """Take one `farm.iterate()` result; reports when `report_interval_s` has passed."""
        self.env_steps = int(result["env_steps"])
        returns = np.asarray(result.get("episode_returns", ()), dtype=np.float64)
        self.returns.extend(returns.tolist())
        self.lengths.extend(np.asarray(result.get("episode_lengths", ()), dtype=np.int64).tolist())
        self.episodes += len(returns)
        for name in _FARM_COUNTERS:
            value = result.get(name, result.get(f"perf/{name}"))
            if value is not None:
                self.counters[name] = int(value)
        for key, value in result.items():
            if "/" in key and isinstance(value, (int, float, np.floating, np.integer)):
                if key not in self._tags:
                    self._tags[key] = tensorboard_tag(key)
                tag = self._tags[key]
                if tag is not None:
                    self._pending[tag].append(float(value))
        if "perf/policy_lag_mean" in result:
            self.farm_figures["policy_lag"] = float(result["perf/policy_lag_mean"])
        if "perf/fragment_mb" in result:  # a constant of the run: summary.json, not a curve
            self.farm_figures["fragment_mb"] = float(result["perf/fragment_mb"])
        now = time.perf_counter()
        if now - self._last_time >= self.report_interval(now - self._start):
            self.report()

    def report_interval(self, elapsed_s: float) -> float:
        """Seconds between points: short at first, log.report_interval_s once the run is long
        enough that HEADLINE_POINTS points at that interval cover it."""
        return min(self.report_interval_s, max(MIN_REPORT_INTERVAL_S, elapsed_s / HEADLINE_POINTS))

    def report(self, final: bool = False, exit_reason: str | None = None) -> None:
        """Write one TensorBoard point per tag at the current env step and refresh the progress
        (the final report names the run's exit_reason on the progress line)."""
        now, cpu = time.perf_counter(), _cpu_s()
        step, steps_done = self.env_steps, self.env_steps - self._last_steps
        steps_per_s = steps_done / max(now - self._last_time, 1e-9)
        scalars = self._scalars(steps_done, steps_per_s, cpu)
        # A second point at a step that has one (a final report right after a regular one)
        # would add nothing, and TensorBoard's line chart draws no line for such a series.
        if steps_done > 0 or not self._reported_once:
            self.writer.add_scalars({tag: value for tag, value in scalars.items() if math.isfinite(value)}, step)
        self._reported_once = True
        self._pending.clear()
        self.eta_s = self._eta(steps_per_s)
        if final:  # the whole segment's speed, not the last few milliseconds'
            steps_per_s = (step - self.start_env_steps) / max(now - self._start, 1e-9)
        self.progress.update(Status(
            env_steps=step, steps_per_s=steps_per_s, elapsed_s=self.wall_s,
            return_mean=self.return_mean if self.returns else None, eta_s=self.eta_s,
            policy_lag=self.farm_figures["policy_lag"], restarts=self.counters["runner_restarts"],
            exit_reason=(exit_reason or "done") if final else None))
        self._last_time, self._last_steps, self._last_cpu = now, step, cpu

    def _scalars(self, steps_done: int, steps_per_s: float, cpu: float) -> dict[str, float]:
        """This report's points: the pending means and the monitor's own figures."""
        # A few values per tag: Python's sum beats numpy's call overhead on such short lists.
        scalars = {tag: values[-1] if tag in CUMULATIVE else math.fsum(values) / len(values)
                   for tag, values in self._pending.items()
                   if not tag.startswith("runner_") or self._several_runners()}
        scalars.pop("charts/env_steps_per_s", None)  # the monitor's own wall-clock figure wins
        joules = self.cpu_energy.joules_since_last()
        if steps_done > 0:
            scalars["charts/env_steps_per_s"] = steps_per_s
            scalars["system/cpu_s_per_million_steps"] = (cpu - self._last_cpu) / steps_done * 1e6
            if joules is not None:
                scalars["system/cpu_joules_per_million_steps"] = joules / steps_done * 1e6
        if self.returns:
            scalars["charts/episode_return_mean"] = self.return_mean
            scalars["charts/episode_length_mean"] = float(np.mean(self.lengths))
        scalars["system/rss_mb"] = rss_mb()
        for name, value in self.counters.items():
            scalars[f"farm/{name}"] = float(value)  # the latest count, not a mean
        return scalars

    def _several_runners(self) -> bool:
        """Per-runner curves only with 2+ runners: with one they repeat the farm's mean."""
        return any(tag.endswith("/runner_1") for tag in self._pending)

    def _eta(self, steps_per_s: float) -> float | None:
        """Seconds to the step budget or the wall-time limit, whichever comes first."""
        limits = [] if self.wall_limit_s is None else [max(self.wall_limit_s - self.wall_s, 0.0)]
        if self.total_env_steps and steps_per_s > 0:
            limits.append(max(self.total_env_steps - self.env_steps, 0) / steps_per_s)
        return min(limits) if limits else None

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
            **({"fragment_mb": round(self.farm_figures["fragment_mb"], 4)}
               if "fragment_mb" in self.farm_figures else {}),
            "cpu_energy": self.cpu_energy.reason or "RAPL, whole CPU package",
            **extra,
        }

    def write_final(self, summary: dict[str, Any]) -> None:
        """The HPARAMS metrics (final/ scalars), the session's end, and summary.json as text."""
        ret = summary["episode_return_mean"]
        finals = {"final/return": math.nan if ret is None else ret,
                  "final/env_steps_per_s": summary["env_steps_per_s"],
                  "final/solved": float(summary["solved"]), "final/wall_s": summary["wall_s"]}
        for tag, value in finals.items():
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, self.env_steps)
        self.writer.add_text("summary", code_block(json.dumps(_finite(summary), indent=2)), self.env_steps)
        self.writer.add_values([hparams_end(summary["exit_reason"] != "crashed")], self.env_steps)

    def close(self) -> None:
        self.progress.close()
        self.writer.close()


def code_block(text: str) -> str:
    """Text as a Markdown code block (TensorBoard renders text as Markdown): four spaces a line."""
    return "    " + text.rstrip("\n").replace("\n", "\n    ")


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
