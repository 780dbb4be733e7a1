"""`rlfarm train CONFIG [--set k=v ...] [--resume RUN_DIR] [--run-dir DIR] [--address A]`.

Order of work, so that a bad config or argument writes nothing: load and check the config,
build the farm (env kwargs and model are checked there), restore a checkpoint when resuming,
and only then create the run dir. The loop stops on stop.env_steps, stop.wall_s or
stop.target_return; Ctrl-C (SIGINT) or SIGTERM stop it cleanly after the current update.
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
from typing import Any

from rlfarm.experiments.config import ExperimentConfig, dump_config, load_config
from rlfarm.experiments.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT_RE = re.compile(r"ckpt-(\d+)\.pt$")
_SEGMENT_SEED_STRIDE = 2**32
"""A resumed segment's env streams start from a seed derived from the checkpoint's env steps."""


def main(args: argparse.Namespace) -> int:
    process_start_s = _process_start()
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
        # Ray's start (~4-5 s, mostly waiting on its processes) and the actors' torch imports
        # overlap the driver's own imports (torch, TensorBoard's writer) from here on.
        training.start_farm_in_background()
    return training.run()


class Training:
    """One process's segment of a run: setup, loop, and the clean exits."""

    def __init__(self, cfg: ExperimentConfig, run_dir: str, resume_checkpoint: str | None,
                 process_start_s: float) -> None:
        self.cfg, self.run_dir, self.resume_checkpoint = cfg, run_dir, resume_checkpoint
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
            import torch

            torch.set_num_threads(int(os.environ.get("RLFARM_TORCH_THREADS", "1")))

        extra: dict[str, Any] = {}
        if self._farm_builder is not None:
            preload_event_writer()  # while the farm starts on its thread
            farm = self._farm_builder.result()  # re-raises a ConfigError from the thread
        else:
            farm = self._make_farm(self._segment_seed())
        try:
            if self.resume_checkpoint:
                extra = self._restore(farm)
            self.segment = int(extra.get("segment", -1)) + 1
            os.makedirs(os.path.join(self.run_dir, CHECKPOINT_DIR), exist_ok=True)
            config_text = dump_config(self.cfg)
            with open(os.path.join(self.run_dir, "config.yaml"), "w", encoding="utf-8") as stream:
                stream.write(config_text)
            monitor = Monitor(
                self.run_dir, config_text=config_text, report_interval_s=self.cfg.log.report_interval_s,
                return_window=self.cfg.log.return_window, total_env_steps=self.cfg.stop.env_steps,
                progress=self.cfg.log.progress, start_env_steps=farm.env_steps,
                state=extra.get("monitor"))
            print(f"rlfarm train: {'resuming' if self.resume_checkpoint else 'run'} {self.run_dir} "
                  f"({self.cfg.env.id}, {self.cfg.algo.name}, farm.mode={self.cfg.farm.mode})",
                  file=sys.stderr)
            return self._loop(farm, monitor)
        finally:
            farm.close()

    def _make_farm(self, seed: int) -> Any:
        from rlfarm.cluster import make_farm

        from rlfarm import envs

        cfg = self.cfg
        try:
            # One copy built here first: in Ray mode a bad env keyword would otherwise surface
            # inside a runner actor, as a dead actor instead of a one-line config error.
            envs.make(cfg.env.id, 1, **(cfg.env.kwargs or {})).close()
            return make_farm(cfg.env, cfg.model, cfg.algo, cfg.farm, seed, cfg.stop.env_steps or None)
        except ValueError as err:  # env kwargs and model/space mismatches surface here
            raise ConfigError(_name_field(str(err), cfg)) from None

    def _restore(self, farm: Any) -> dict[str, Any]:
        from rlfarm import agents

        try:
            return farm.load_checkpoint(self.resume_checkpoint)
        except agents.CheckpointError as err:
            raise ConfigError(f"--resume: {self.resume_checkpoint}: {err}") from None

    def _loop(self, farm: Any, monitor: Any) -> int:
        cfg, stop = self.cfg, self.cfg.stop
        loop_start = time.perf_counter()
        exit_reason, error = "", None
        solved_at = monitor.solved_at_env_steps
        last_checkpoint_time = time.monotonic()
        previous = self._install_signal_handlers()
        try:
            while not exit_reason:
                monitor.record(farm.iterate())
                solved = (stop.target_return is not None and monitor.window_full
                          and monitor.return_mean >= stop.target_return)
                if solved and solved_at is None:
                    solved_at = monitor.solved_at_env_steps = farm.env_steps
                if solved and not stop.continue_after_target:
                    exit_reason = "target_return"
                elif stop.env_steps and farm.env_steps >= stop.env_steps:
                    exit_reason = "env_steps"
                elif stop.wall_s and monitor.segment_wall_s + monitor.wall_before >= stop.wall_s:
                    exit_reason = "wall_s"
                elif self.stop_signal:
                    exit_reason = self.stop_signal
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
        monitor.close()
        from rlfarm.experiments.monitor import process_age_s, write_summary

        age = process_age_s()
        summary = monitor.summary(
            exit_reason, solved_at is not None, self.last_checkpoint, error=error, train_loop_s=round(loop_s, 3),
            process_s=None if age is None else round(age, 3),
            startup_s=round(loop_start - self.process_start_s, 3), run_dir=self.run_dir)
        write_summary(self.run_dir, summary)
        self._print_end(summary)
        return {"crashed": 1, "interrupted": 130, "sigterm": 143}.get(exit_reason, 0)

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

    # ---- signals: the first Ctrl-C or SIGTERM stops after the current update -----------
    def _install_signal_handlers(self) -> dict[int, Any]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def request_stop(signum: int, frame: Any) -> None:
            if self.stop_signal:  # asked twice: stop now
                raise KeyboardInterrupt
            self.stop_signal = "interrupted" if signum == signal.SIGINT else "sigterm"
            print("\nrlfarm train: stopping after this update (again to stop at once)", file=sys.stderr)

        for signum in (signal.SIGINT, signal.SIGTERM):
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
