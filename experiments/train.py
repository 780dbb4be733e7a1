"""`rlfarm train CONFIG [--set k=v ...] [--resume RUN_DIR] [--run-dir DIR] [--address A]`.

Order of work, so that a bad config or argument writes nothing: load and check the config,
build the farm (env kwargs and model are checked there), restore a checkpoint when resuming,
and only then create the run dir. The loop stops on stop.env_steps, stop.wall_s or
stop.target_return; Ctrl-C (SIGINT), SIGTERM or SIGUSR1 (SLURM's warning before a time
limit: exit_reason "requeue") stop it cleanly after the current update.
Every exit except a crash writes a final checkpoint; every exit writes summary.json.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import signal
import sys
import time
import traceback
from typing import Any, Callable, Sequence, TypeVar

from rlfarm.experiments.config import ExperimentConfig, dump_config, load_config
from rlfarm.experiments.errors import ConfigError, check_torch_threads

CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT_RE = re.compile(r"ckpt-(\d+)\.pt$")
EXIT_CODES = {"crashed": 1, "interrupted": 130, "requeue": 138, "sigterm": 143}
"""Exit codes of `rlfarm train` by exit_reason; every other reason (env_steps, wall_s,
target_return, callback) exits 0. "requeue" (SIGUSR1, 128 + 10) is SLURM's warning before a
time limit: the batch script requeues the job, whose next start resumes the run."""
STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "sigterm", signal.SIGUSR1: "requeue"}
"""Signals that stop the loop after the current update, and the exit_reason each gives."""
_SEGMENT_SEED_STRIDE = 2**32
"""A resumed segment's env streams start from a seed derived from the run's newest checkpoint
name's env steps (that of the file it resumes from, unless that one was unusable)."""
Loaded = TypeVar("Loaded")


def main(args: argparse.Namespace) -> int:
    process_start_s = _process_start()
    check_torch_threads()
    config_path = args.config
    if args.resume and not config_path:
        config_path = os.path.join(args.resume, "config.yaml")
    if not config_path:
        raise ConfigError("CONFIG: give a config file, or --resume RUN_DIR to continue a run")
    resume_checkpoint = find_last_checkpoint(args.resume) if args.resume else None
    if args.resume and resume_checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {os.path.join(args.resume, CHECKPOINT_DIR)}")
    cfg = load_config(config_path, args.overrides)
    if getattr(args, "address", None):
        cfg.farm.address = args.address
    run_dir = args.resume or args.run_dir or new_run_dir(cfg)
    if not args.resume and os.path.exists(run_dir) and os.listdir(run_dir):
        raise ConfigError(f"--run-dir: {run_dir} exists and is not empty; use --resume {run_dir} to continue it")
    training = Training(cfg, run_dir, resume_checkpoint, process_start_s)
    if cfg.farm.mode == "ray":
        # Ray's start (seconds, mostly waiting on its processes) and the actors' torch imports
        # overlap the driver's own imports (torch, TensorBoard's writer) from here on.
        training.start_farm_in_background()
    return training.run()


class Training:
    """One process's segment of a run: setup, loop, and the clean exits."""

    def __init__(self, cfg: ExperimentConfig, run_dir: str, resume_checkpoint: str | None,
                 process_start_s: float, callbacks: Sequence[Callable[[dict], Any]] = ()) -> None:
        self.cfg, self.run_dir, self.resume_checkpoint = cfg, run_dir, resume_checkpoint
        self.callbacks = list(callbacks)
        """Called with each iteration's metrics (see experiments/api.py's Callback)."""
        self.process_start_s = process_start_s
        self.last_checkpoint: str | None = resume_checkpoint
        self.stop_signal: str | None = None
        self._farm_builder: Any = None

    def _segment_seed(self) -> int:
        seed = self.cfg.seed
        if self.resume_checkpoint:  # fresh env streams for the new segment, not a replay
            resumed_steps = int(_CHECKPOINT_RE.search(self.resume_checkpoint).group(1))
            seed += _SEGMENT_SEED_STRIDE * (1 + resumed_steps % 2**30)
        return seed

    def start_farm_in_background(self) -> None:
        """Build the farm on a thread; run() picks it up (or its config error) when it needs it.

        The thread stays alive until the process ends: Ray's processes die with the thread
        that started them (PR_SET_PDEATHSIG follows the thread, not the process).
        """
        import threading
        from concurrent.futures import Future

        self._farm_builder = Future()
        seed = self._segment_seed()

        def build() -> None:
            try:
                self._farm_builder.set_result(self._make_farm(seed))
            except BaseException as err:  # noqa: BLE001 - re-raised in run()
                self._farm_builder.set_exception(err)
            threading.Event().wait()  # keep Ray's parent thread; a daemon ends with the process

        threading.Thread(target=build, name="rlfarm-farm-start", daemon=True).start()

    def run(self) -> int:
        from rlfarm.experiments.monitor import Monitor, preload_event_writer

        if self.cfg.farm.mode != "ray":  # a Ray-mode driver never imports torch
            from rlfarm.cluster.learner import set_torch_threads

            set_torch_threads()

        from rlfarm.envs.failures import EnvStartError

        extra: dict[str, Any] = {}
        try:
            if self._farm_builder is not None:
                preload_event_writer()  # while the farm starts on its thread
                farm = self._farm_builder.result()  # re-raises a ConfigError from the thread
            else:
                farm = self._make_farm(self._segment_seed())
        except EnvStartError as err:
            return self._start_failed(err)
        try:
            if self.resume_checkpoint:
                extra = self._restore(farm)
            self.segment = int(extra.get("segment", -1)) + 1
            config_text = self._write_run_dir()
            monitor = Monitor(
                self.run_dir, config_text=config_text, report_interval_s=self.cfg.log.report_interval_s,
                return_window=self.cfg.log.return_window, total_env_steps=self.cfg.stop.env_steps,
                progress=self.cfg.log.progress, start_env_steps=farm.env_steps,
                state=extra.get("monitor"))
            print(f"rlfarm train: {'resuming' if self.resume_checkpoint else 'run'} {self.run_dir} "
                  f"({self.cfg.env.id}, {self.cfg.algo.name}, farm.mode={self.cfg.farm.mode})",
                  file=sys.stderr)
            self._report_placement(farm, monitor, final=False)
        except Exception as err:  # after the run dir exists, every exit leaves a summary
            if os.path.isdir(self.run_dir):
                self._write_bare_summary("crashed", f"{type(err).__name__}: {err}")
            raise
        try:
            return self._loop(farm, monitor)
        finally:
            farm.close()

    def _write_run_dir(self) -> str:
        os.makedirs(os.path.join(self.run_dir, CHECKPOINT_DIR), exist_ok=True)
        config_text = dump_config(self.cfg)
        with open(os.path.join(self.run_dir, "config.yaml"), "w", encoding="utf-8") as stream:
            stream.write(config_text)
        return config_text

    def _write_bare_summary(self, exit_reason: str, error: str) -> str:
        """summary.json of a run that ended before its loop (no monitor, no steps)."""
        from rlfarm.experiments.monitor import write_summary

        return write_summary(self.run_dir, {
            "env_steps": 0, "wall_s": 0.0, "episode_return_mean": None, "episodes": 0, "solved": False,
            "exit_reason": exit_reason, "last_checkpoint": self.last_checkpoint, "error": error,
            "run_dir": self.run_dir})

    def _start_failed(self, err: Any) -> int:
        """A runner (or the driver's probe) could not make the env: say why where the user
        looks, keep a run dir with summary.json, exit 2 for a config error and 1 otherwise."""
        from rlfarm.envs.failures import print_report

        self._write_run_dir()
        path = self._write_bare_summary("runner_start_failed", err.report())
        print_report(err)
        print(f"rlfarm train: runner_start_failed; summary {path}", file=sys.stderr)
        return 2 if err.config_error else 1

    def _make_farm(self, seed: int) -> Any:
        from rlfarm.cluster import make_farm

        cfg = self.cfg
        try:
            # One copy built here first: in Ray mode a bad env keyword would otherwise surface
            # inside a runner actor, as a dead actor instead of a one-line config error.
            self._probe_env()
            return make_farm(cfg.env, cfg.model, cfg.algo, cfg.farm, seed, cfg.stop.env_steps or None)
        except ValueError as err:  # env kwargs and model/space mismatches surface here
            raise ConfigError(_name_field(str(err), cfg)) from None

    def _probe_env(self) -> None:
        from rlfarm import envs
        from rlfarm.envs.failures import describe

        env_cfg = self.cfg.env
        try:
            envs.make(env_cfg.id, 1, imports=tuple(env_cfg.imports), **(env_cfg.kwargs or {})).close()
        except ValueError:
            raise
        except Exception as err:  # the user's env code failed: reported like a runner's failure
            raise describe(err, "the driver") from err

    def _restore(self, farm: Any) -> dict[str, Any]:
        """Load the newest checkpoint of the run that loads (see `load_newest_valid`)."""
        candidates = list_checkpoints(self.run_dir)[::-1]
        self.resume_checkpoint, extra = load_newest_valid(candidates, farm.load_checkpoint, "--resume")
        self.last_checkpoint = self.resume_checkpoint
        return extra

    def _loop(self, farm: Any, monitor: Any) -> int:
        cfg, stop = self.cfg, self.cfg.stop
        loop_start = time.perf_counter()
        exit_reason, error, solved = "", None, False
        last_checkpoint_time = time.monotonic()
        previous = self._install_signal_handlers()
        try:
            while not exit_reason:
                metrics = farm.iterate()
                monitor.record(metrics)
                solved = (stop.target_return is not None and monitor.window_full
                          and monitor.return_mean >= stop.target_return)
                callback_stop = bool(self.callbacks) and self._run_callbacks(metrics, monitor)
                if solved:
                    exit_reason = "target_return"
                elif stop.env_steps and farm.env_steps >= stop.env_steps:
                    exit_reason = "env_steps"
                elif stop.wall_s and monitor.segment_wall_s + monitor.wall_before >= stop.wall_s:
                    exit_reason = "wall_s"
                elif self.stop_signal:
                    exit_reason = self.stop_signal
                elif callback_stop:
                    exit_reason = "callback"
                elif cfg.log.checkpoint_interval_s and \
                        time.monotonic() - last_checkpoint_time >= cfg.log.checkpoint_interval_s:
                    self._checkpoint(farm, monitor)
                    last_checkpoint_time = time.monotonic()
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the loop's checks
            exit_reason = "interrupted"
        except Exception as err:  # noqa: BLE001 - a crash still writes the summary
            exit_reason, error = "crashed", f"{type(err).__name__}: {err}"
            traceback.print_exc()
        finally:
            self._restore_signal_handlers(previous)
        loop_s = time.perf_counter() - loop_start
        if exit_reason != "crashed":
            try:
                self._checkpoint(farm, monitor)
            except Exception as err:  # noqa: BLE001
                exit_reason, error = "crashed", f"final checkpoint failed: {type(err).__name__}: {err}"
                traceback.print_exc()
        monitor.report(final=True)
        placement = self._report_placement(farm, monitor, final=True)
        monitor.close()
        from rlfarm.experiments.monitor import process_age_s, write_summary

        age = process_age_s()
        summary = monitor.summary(
            exit_reason, solved, self.last_checkpoint, error=error, train_loop_s=round(loop_s, 3),
            process_s=None if age is None else round(age, 3),
            startup_s=round(loop_start - self.process_start_s, 3), run_dir=self.run_dir,
            segments=self.segment + 1,
            **({"placement": placement, "lost_fragments": placement.get("lost_fragments")}
               if placement else {}))
        write_summary(self.run_dir, summary)
        self._print_end(summary)
        return EXIT_CODES.get(exit_reason, 0)

    def _run_callbacks(self, metrics: dict[str, Any], monitor: Any) -> bool:
        """Call each callback with the iteration's metrics plus the monitor's view; write the
        numbers they return under custom/; True when one asks to stop."""
        view = {**metrics, "episode_return_mean": monitor.return_mean if monitor.returns else None,
                "episodes": monitor.episodes, "wall_s": monitor.wall_s}
        stop = False
        for callback in self.callbacks:
            answer = callback(view)
            if isinstance(answer, dict):
                stop = stop or bool(answer.get("stop", False))
                for key, value in answer.items():
                    if key != "stop" and isinstance(value, (int, float)) and not isinstance(value, bool):
                        monitor.writer.add_scalar(f"custom/{key}", float(value), monitor.env_steps)
            else:
                stop = stop or answer is True
        return stop

    def _report_placement(self, farm: Any, monitor: Any, final: bool) -> dict[str, Any] | None:
        """Where every runner and learner runs (Ray farms only): one line on stderr at the
        start, a TensorBoard text at the start and the end (with every runner replacement);
        returns the record for summary.json."""
        if not hasattr(farm, "placement_record"):
            return None
        import json

        from rlfarm.cluster.placement import describe_placement

        try:
            record = farm.placement_record()
        except Exception as err:  # noqa: BLE001 - a lost cluster must not hide the summary
            return {"unknown": f"{type(err).__name__}: {err}"}
        record["segment"] = self.segment
        if not final:
            print(f"rlfarm train: placement: {describe_placement(record)}", file=sys.stderr)
        tag = "placement/end" if final else "placement/start"
        monitor.writer.add_text(tag, "    " + json.dumps(record, indent=1).replace("\n", "\n    "),
                                farm.env_steps)
        return record

    def _checkpoint(self, farm: Any, monitor: Any) -> str:
        path = os.path.join(self.run_dir, CHECKPOINT_DIR, f"ckpt-{farm.env_steps:012d}.pt")
        farm.save_checkpoint(path, {"monitor": monitor.state(), "segment": self.segment,
                                    "name": self.cfg.name, "seed": self.cfg.seed})
        self.last_checkpoint = path
        for old in list_checkpoints(self.run_dir)[:-self.cfg.log.keep_checkpoints]:
            if old != path:
                os.remove(old)
        return path

    def _print_end(self, summary: dict[str, Any]) -> None:
        ret = summary["episode_return_mean"]
        ret_text = "n/a" if ret is None else f"{ret:.2f}"
        print(f"rlfarm train: {summary['exit_reason']} after {summary['env_steps']} env steps, "
              f"{summary['wall_s']:.1f} s ({summary['env_steps_per_s']:.0f} steps/s), "
              f"return {ret_text}{' (solved)' if summary['solved'] else ''}", file=sys.stderr)
        if summary["exit_reason"] == "crashed":
            where = (f"{summary['last_checkpoint']}; continue with `rlfarm train --resume {self.run_dir}`"
                     if summary["last_checkpoint"] else "none was written")
            print(f"rlfarm train: crashed: {summary['error']}\n"
                  f"rlfarm train: last checkpoint: {where}", file=sys.stderr)
        else:
            print(f"rlfarm train: checkpoint {summary['last_checkpoint']}; summary "
                  f"{os.path.join(self.run_dir, 'summary.json')}", file=sys.stderr)

    # ---- signals: the first Ctrl-C, SIGTERM or SIGUSR1 stops after the current update ---
    def _install_signal_handlers(self) -> dict[int, Any]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def request_stop(signum: int, frame: Any) -> None:
            if self.stop_signal:  # asked twice: stop now (the batch script repeats USR1)
                if signum == signal.SIGUSR1:
                    return
                raise KeyboardInterrupt
            self.stop_signal = STOP_SIGNALS[signum]
            print("\nrlfarm train: stopping after this update (again to stop at once)", file=sys.stderr)

        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, request_stop)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def new_run_dir(cfg: ExperimentConfig) -> str:
    """<log.dir>/<name>-<YYYYmmdd-HHMMSS>, with -2, -3, ... when two runs start in one second."""
    base = os.path.join(cfg.log.dir, f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, count = base, 1
    while os.path.exists(path):
        count += 1
        path = f"{base}-{count}"
    return path


def list_checkpoints(run_dir: str) -> list[str]:
    """A run's checkpoints, oldest first (ordered by env steps in the file name)."""
    paths = glob.glob(os.path.join(glob.escape(run_dir), CHECKPOINT_DIR, "ckpt-*.pt"))
    return sorted((p for p in paths if _CHECKPOINT_RE.search(p)),
                  key=lambda p: int(_CHECKPOINT_RE.search(p).group(1)))


def load_newest_valid(candidates: Sequence[str], load: Callable[[str], Loaded],
                      option: str) -> tuple[str, Loaded]:
    """(path, load(path)) for the first of `candidates` (newest first) that loads.

    Each unusable one is named once on stderr with its reason, with the one used; when none
    loads, a ConfigError for `option` names the newest one's reason.
    """
    from rlfarm import agents

    failures: list[str] = []
    for path in candidates:
        try:
            loaded = load(path)
        except agents.CheckpointError as err:
            failures.append(str(getattr(err, "cause", err)))  # a learner actor's: Ray wraps it
            continue
        for failure in failures:
            print(f"rlfarm: skipping {failure}", file=sys.stderr)
        if failures:
            print(f"rlfarm: using {path}, the newest checkpoint that loads", file=sys.stderr)
        return path, loaded
    if not failures:
        raise ConfigError(f"{option}: no checkpoint to load")
    older = f" (nor do the {len(failures) - 1} older ones load)" if len(failures) > 1 else ""
    raise ConfigError(f"{option}: {failures[0]}{older}")


def find_last_checkpoint(run_dir: str) -> str | None:
    if not os.path.isdir(run_dir):
        raise ConfigError(f"{run_dir}: no such run dir")
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def _name_field(message: str, cfg: ExperimentConfig) -> str:
    """Prefix a layer's "field: what is wrong" with its config section (env.kwargs, model, ...)."""
    head = message.split(":", 1)[0].strip()
    if head == cfg.env.id:  # envs.make: "<id>: unknown keyword(s) ..."
        return f"env.kwargs:{message.split(':', 1)[1]}"
    if head in (cfg.env.kwargs or {}):
        return f"env.kwargs.{message}"
    keyword = message.split("=", 1)[0].strip()  # "dt=0.01 breaks the stability limit ..."
    if keyword in (cfg.env.kwargs or {}):
        return f"env.kwargs.{keyword}: {message}"
    for section in ("model", "algo", "farm", "env"):
        if hasattr(getattr(cfg, section), head):
            return f"{section}.{message}"
    return f"{cfg.env.id}: {message}"


def _process_start() -> float:
    """perf_counter() value at which this process started (for start-up time in the summary)."""
    from rlfarm.experiments.monitor import process_age_s

    age = process_age_s()
    return time.perf_counter() - (age or 0.0)
