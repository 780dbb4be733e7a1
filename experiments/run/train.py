"""`rlfarm train CONFIG [--set k=v ...] [--resume RUN_DIR] [--run-dir DIR] [--address A]`.

Order of work, so that a bad config or argument writes nothing: load and check the config,
build the farm (env kwargs and model are checked there), restore a checkpoint when resuming,
and only then create the run dir. The loop stops on stop.env_steps, stop.wall_s or
stop.target_return; Ctrl-C (SIGINT), SIGTERM or SIGUSR1 (SLURM's warning before a time limit:
exit_reason "requeue") stop it cleanly after the current update, or STOP_GRACE_S later at the
latest. Every exit except a crash writes a final checkpoint; every
exit writes summary.json (docs/robustness.md has the bounds).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rlfarm.experiments.config import ExperimentConfig, display_config, dump_config, name_field
from rlfarm.experiments.errors import ConfigError, check_torch_threads, error_text, guarded, is_stop_condition
from rlfarm.experiments.report.console import hparams, print_closing_block, report_placement, say
from rlfarm.experiments.report.pictures import checkpoint_picture
from rlfarm.experiments.run.run_dirs import (
    CHECKPOINT_DIR,
    RunDirLock,
    checkpoint_env_steps,
    claim_run_dir,
    list_checkpoints,
    load_newest_valid,
)
from rlfarm.experiments.run.stops import WALL_GRACE_S, SignalStops, StopDeadline

if TYPE_CHECKING:  # the driver imports these lazily: torch, TensorBoard and Ray load on use
    from rlfarm.cluster.farm_base import Farm
    from rlfarm.envs.failures import EnvStartError
    from rlfarm.experiments.report.monitor import Monitor

EXIT_CODES = {"crashed": 1, "interrupted": 130, "requeue": 138, "sigterm": 143}
"""Exit codes of `rlfarm train` by exit_reason; every other reason (env_steps, wall_s,
target_return, callback) exits 0. "requeue" (SIGUSR1, 128 + 10) is SLURM's warning before a
time limit: the batch script requeues the job, whose next start resumes the run."""
_SEGMENT_SEED_STRIDE = 2**32
"""A resumed segment's env streams start from a seed derived from the run's newest checkpoint
name's env steps (that of the file it resumes from, unless that one was unusable)."""
def main(args: argparse.Namespace) -> int:
    """`rlfarm train`: the preflight (experiments/run/preflight.py), then the run."""
    from rlfarm.experiments.run.preflight import prepare_training

    process_start_s = _process_start()
    check_torch_threads()
    check_only = bool(getattr(args, "check_nodes", False))
    training = prepare_training(args.config, overrides=args.overrides, address=args.address, resume=args.resume,
                                run_dir=args.run_dir, force=args.force, background_start=not check_only,
                                process_start_s=process_start_s, py_modules=getattr(args, "py_modules", None) or (),
                                announce=not check_only)
    if check_only:
        from rlfarm.experiments.run.node_preflight import check_nodes_only

        return check_nodes_only(training)
    return training.run()


class Training(SignalStops):
    """One process's segment of a run: setup, loop, and the clean exits."""

    def __init__(self, cfg: ExperimentConfig, run_dir: str, resume_checkpoint: str | None,
                 process_start_s: float, callbacks: Sequence[Callable[[dict], Any]] = (),
                 unique_run_dir: bool = False, hparams_keys: Sequence[str] = ()) -> None:
        self.cfg, self.run_dir, self.resume_checkpoint = cfg, run_dir, resume_checkpoint
        self.hparams_keys = tuple(hparams_keys)
        """Fields the HPARAMS row holds even at their default (a sweep's swept fields)."""
        self.unique_run_dir = unique_run_dir
        """True: `run_dir` is a proposed name, suffixed -2, -3, ... when taken (see claim_run_dir)."""
        self.callbacks = list(callbacks)
        """Called with each iteration's metrics (see experiments/api.py's Callback)."""
        self.process_start_s = process_start_s
        self.last_checkpoint: str | None = resume_checkpoint
        self.stop_signal: str | None = None
        self._deadline_at, self._deadline_reason = float("inf"), ""
        """When (monotonic) the armed SIGALRM fires, and the exit_reason it gives."""
        self._farm_builder: Any = None  # a Future of the Farm, while Ray starts on a thread
        self._announced = self._pictures_failed = False
        self._env_spaces: tuple[Any, Any] | None = None
        """(single observation space, single action space), once `check_env` built the env."""
        self.start_error: EnvStartError | None = None
        """Set by the preflight when the env could not be built: run() then ends the run."""
        self._claimed = False
        """True once this process created the run dir (a resumed run's dir is not ours to reset)."""
        self.lock: RunDirLock | None = None
        """This process's writer lock on the run dir (taken by the preflight on resume, at the
        claim of a new dir), released when run() returns."""
        self.shipment: Any = None
        """What of the user's code goes to the cluster (cluster/launch/ship.py), when joining one."""
        self.shipped: dict | None = None
        """Its record for summary.json (or the submit's record, inside a submitted job)."""

    def announce(self) -> None:
        """The run line: where it writes and what it runs (once)."""
        if not self._announced:
            cfg = self.cfg
            starting = "; starting Ray" if cfg.farm.mode == "ray" else ""
            farm = cfg.farm
            batch = farm.batch_size or farm.num_runners * cfg.env.envs_per_runner * farm.fragment_length
            spread = f", spread over farm.runner_slots={farm.runner_slots}" if farm.runner_slots else ""
            say(f"rlfarm train: {'resuming' if self.resume_checkpoint else 'run'} {self.run_dir} "
                f"({cfg.env.id}, {cfg.algo.name}, farm.mode={cfg.farm.mode}{starting})")
            say(f"rlfarm train: batch {batch} env steps per update; fragments of {cfg.env.envs_per_runner} "
                f"copies x {farm.fragment_length} steps from {farm.num_runners} runner(s){spread}")
        self._announced = True

    def _segment_seed(self) -> int:
        seed = self.cfg.seed
        if self.resume_checkpoint:  # fresh env streams for the new segment, not a replay
            resumed_steps = checkpoint_env_steps(self.resume_checkpoint)
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
        """Train to a stop; returns the exit code (EXIT_CODES). Call after the preflight."""
        try:
            return self._run()
        finally:
            if self.lock is not None:
                self.lock.release()

    def _run(self) -> int:
        from rlfarm.experiments.report.monitor import Monitor, preload_event_writer

        if self.start_error is not None:
            return self.start_failed(self.start_error)
        if self.cfg.farm.mode != "ray":  # a Ray-mode driver never imports torch
            from rlfarm.cluster.learner import set_torch_threads

            set_torch_threads()

        from rlfarm.envs.failures import EnvStartError

        extra: dict[str, Any] = {}
        try:
            if self._farm_builder is not None:
                preload_event_writer()  # while the farm starts on its thread
                farm: Farm = self._farm_builder.result()  # re-raises a ConfigError from the thread
            else:
                farm = self._make_farm(self._segment_seed())
        except EnvStartError as err:  # a runner could not make the env
            return self.start_failed(err)
        except Exception as err:  # the embedded Ray's node died while the farm started
            if type(err).__name__ != "RayNodeDiedError":  # by name: no Ray import in serial mode
                raise
            self._write_run_dir()  # the run dir keeps a summary of this exit too
            path = self._write_bare_summary("crashed", str(err))
            print(f"rlfarm train: {err}; summary {path}", file=sys.stderr)
            return 1
        try:
            if self.resume_checkpoint:
                extra = self._restore(farm)
                if farm.is_off_policy and not extra.get("replay_saved"):
                    say(f"rlfarm train: the checkpoint holds no replay buffer (log.checkpoint_replay: false); "
                        f"it refills to algo.learning_starts={self.cfg.algo.learning_starts} transitions "
                        "before gradient steps resume")
            self.segment = int(extra.get("segment", -1)) + 1
            self._write_run_dir()
            cfg = self.cfg
            self.announce()
            monitor = Monitor(
                self.run_dir, config_text=display_config(cfg), report_interval_s=cfg.log.report_interval_s,
                return_window=cfg.log.return_window, total_env_steps=cfg.stop.env_steps,
                progress=cfg.log.progress, start_env_steps=farm.env_steps, state=extra.get("monitor"),
                target_return=cfg.stop.target_return, wall_limit_s=cfg.stop.wall_s,
                hparams=hparams(cfg, self.hparams_keys))
            if getattr(farm, "checked_nodes", None):
                say(f"rlfarm train: node preflight passed on {', '.join(farm.checked_nodes)}")
            report_placement(farm, monitor.writer, self.segment, final=False)
        except Exception as err:  # a run dir this process made keeps a summary of every exit
            if self._claimed and not isinstance(err, ConfigError):
                self._write_bare_summary("crashed", f"{type(err).__name__}: {err}")
            raise
        try:
            return self._loop(farm, monitor)
        finally:
            farm.close()

    def _write_run_dir(self) -> str:
        """Claim the run dir (a resumed run keeps its own) and write the resolved config."""
        if self.resume_checkpoint:
            os.makedirs(os.path.join(self.run_dir, CHECKPOINT_DIR), exist_ok=True)
        else:
            proposed, self.run_dir = self.run_dir, claim_run_dir(self.run_dir, unique=self.unique_run_dir)
            self._claimed = True
            self.lock = RunDirLock(self.run_dir)  # a --resume of it meanwhile is refused
            if self._announced and self.run_dir != proposed:  # said before Ray started
                say(f"rlfarm train: {proposed} was taken meanwhile; writing {self.run_dir}")
        config_text = dump_config(self.cfg)
        with open(os.path.join(self.run_dir, "config.yaml"), "w", encoding="utf-8") as stream:
            stream.write(config_text)
        return config_text

    def _write_bare_summary(self, exit_reason: str, error: str) -> str:
        """summary.json of a run that ended before its loop (no monitor, no steps)."""
        from rlfarm.experiments.report.monitor import write_summary

        return write_summary(self.run_dir, {
            "env_steps": 0, "wall_s": 0.0, "episode_return_mean": None, "episodes": 0, "solved": False,
            "exit_reason": exit_reason, "last_checkpoint": self.last_checkpoint, "error": error,
            "run_dir": self.run_dir, **({"shipped": self.shipped} if self.shipped is not None else {})})

    def start_failed(self, err: EnvStartError) -> int:
        """A runner (or the driver's probe) could not make the env: say why where the user
        looks, keep a run dir with summary.json, exit 2 for a config error and 1 otherwise."""
        from rlfarm.envs.failures import print_report

        self._write_run_dir()
        exit_reason = getattr(err, "exit_reason", "runner_start_failed")  # or node_check_failed
        path = self._write_bare_summary(exit_reason, err.report())
        print_report(err)
        print(f"rlfarm train: {exit_reason}; summary {path}", file=sys.stderr)
        return 2 if err.config_error else 1

    def _make_farm(self, seed: int) -> Farm:
        import shutil
        import tempfile
        from pathlib import Path

        from rlfarm.cluster import make_farm

        cfg = self.cfg
        self.check_env()
        staging = tempfile.mkdtemp(prefix="rlfarm-ship-") if self.shipment is not None else None
        try:  # ray.init uploads the runtime_env's local paths, so the staged copy can go after it
            runtime_env = self.shipment.runtime_env(Path(staging)) if staging else None
            return make_farm(cfg.env, cfg.model, cfg.algo, cfg.farm, seed, cfg.stop.env_steps or None,
                             runtime_env=runtime_env)
        except ValueError as err:  # env kwargs and model/space mismatches surface here
            raise ConfigError(name_field(str(err), cfg)) from None
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)

    def check_env(self) -> tuple[Any, Any]:
        """Build one env copy, once, and return its (single observation space, single action
        space): in Ray mode a bad env keyword, or the user's env failing in its __init__, would
        otherwise surface inside a runner actor as a dead actor."""
        from rlfarm import envs
        from rlfarm.envs.failures import describe

        if self._env_spaces is None:
            env_cfg = self.cfg.env
            try:
                probe = envs.make(env_cfg.id, 1, imports=tuple(env_cfg.imports), **(env_cfg.kwargs or {}))
            except ValueError as err:
                raise ConfigError(name_field(str(err), self.cfg)) from None
            except Exception as err:  # the user's env code failed: reported like a runner's failure
                raise describe(err, "the driver") from err
            self._env_spaces = (probe.single_observation_space, probe.single_action_space)
            probe.close()
        return self._env_spaces

    def _restore(self, farm: Farm) -> dict[str, Any]:
        """Load the newest checkpoint of the run that loads (see `load_newest_valid`)."""
        candidates = list_checkpoints(self.run_dir)[::-1]
        self.resume_checkpoint, extra = load_newest_valid(candidates, farm.load_checkpoint, "--resume")
        self.last_checkpoint = self.resume_checkpoint
        return extra

    def _loop(self, farm: Farm, monitor: Monitor) -> int:
        """Iterate the farm until a stop rule, a signal, a callback or a crash; then finish."""
        cfg, stop = self.cfg, self.cfg.stop
        loop_start = time.perf_counter()
        exit_reason, error = "", None
        solved_at = monitor.solved_at_env_steps
        last_checkpoint_time = time.monotonic()
        previous = self._install_signal_handlers(farm)
        if stop.wall_s:
            self._arm_deadline(stop.wall_s - monitor.wall_before + WALL_GRACE_S, "wall_s")
        try:
            while not exit_reason:
                metrics = farm.iterate()
                monitor.record(metrics)
                if metrics.get("stop_error"):
                    from rlfarm.cluster.farm_base import EnvErrorRateExceeded

                    raise EnvErrorRateExceeded(metrics["stop_error"])
                solved = (stop.target_return is not None and monitor.window_full
                          and monitor.return_mean >= stop.target_return)
                callback_stop = bool(self.callbacks) and self._run_callbacks(metrics, monitor)
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
                elif callback_stop:
                    exit_reason = "callback"
                elif cfg.log.checkpoint_interval_s and \
                        time.monotonic() - last_checkpoint_time >= cfg.log.checkpoint_interval_s:
                    self._checkpoint(farm, monitor)
                    self._picture(farm, monitor)
                    last_checkpoint_time = time.monotonic()
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the loop's checks
            exit_reason = "interrupted"
        except StopDeadline as deadline:
            exit_reason = str(deadline)
            print(f"rlfarm train: {exit_reason}: the iteration in progress did not end in time; "
                  "interrupted it", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - a crash still writes the summary
            exit_reason, error = "crashed", error_text(err)
            if not is_stop_condition(err):  # those say all there is in their message
                traceback.print_exc()
        finally:
            self._restore_signal_handlers(previous)
        return self._finish(farm, monitor, exit_reason, error, solved_at, loop_start)

    def _finish(self, farm: Farm, monitor: Monitor, exit_reason: str, error: str | None,
                solved_at: int | None, loop_start: float) -> int:
        """The end of every run: final checkpoint and picture (not after a crash), the last
        report, summary.json and the closing block; returns the exit code. Each step is
        guarded, so that a failing one (a full disk) still leaves the others done."""
        loop_s = time.perf_counter() - loop_start
        if exit_reason != "crashed":
            exit_reason, error = guarded(lambda: self._checkpoint(farm, monitor), exit_reason, error,
                                          "final checkpoint failed: ")
        if exit_reason != "crashed":
            self._picture(farm, monitor)
        exit_reason, error = guarded(lambda: monitor.report(final=True, exit_reason=exit_reason),
                                      exit_reason, error)
        placement = report_placement(farm, monitor.writer, self.segment, final=True)
        from rlfarm.experiments.report.monitor import write_summary

        # "in all" runs from this run's own start: the process's for the CLI, the call's for the
        # API and sweep trials, whose process (a script, a Ray worker started ahead) is older.
        summary = monitor.summary(
            exit_reason, solved_at is not None, self.last_checkpoint, error=error, train_loop_s=round(loop_s, 3),
            process_s=round(time.perf_counter() - self.process_start_s, 3),
            startup_s=round(loop_start - self.process_start_s, 3), run_dir=self.run_dir,
            segments=self.segment + 1,
            **({"shipped": self.shipped} if self.shipped is not None else {}),
            **({"placement": placement, "lost_fragments": placement.get("lost_fragments")}
               if placement else {}))
        exit_reason, error = guarded(lambda: monitor.write_final(summary), exit_reason, error)
        exit_reason, error = guarded(monitor.close, exit_reason, error)
        summary.update(exit_reason=exit_reason, error=error)
        try:
            write_summary(self.run_dir, summary)
        except OSError as err:  # a full disk: say so, with the checkpoint, and no summary
            summary["error"] = f"{summary.get('error') or ''}; summary not written: {error_text(err)}".lstrip("; ")
            summary["exit_reason"] = exit_reason = "crashed"
        print_closing_block(summary, self.cfg, self.run_dir)
        return EXIT_CODES.get(exit_reason, 0)

    def _run_callbacks(self, metrics: dict[str, Any], monitor: Monitor) -> bool:
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

    def _picture(self, farm: Farm, monitor: Monitor) -> None:
        if self.cfg.log.pictures and not self._pictures_failed and self.last_checkpoint:
            self._pictures_failed = not checkpoint_picture(self.cfg, farm, self.last_checkpoint, self.check_env(),
                                                           monitor.writer, monitor.env_steps)

    def _checkpoint(self, farm: Farm, monitor: Monitor) -> str:
        path = os.path.join(self.run_dir, CHECKPOINT_DIR, f"ckpt-{farm.env_steps:012d}.pt")
        farm.save_checkpoint(path, {"monitor": monitor.state(), "segment": self.segment,
                                    "name": self.cfg.name, "seed": self.cfg.seed},
                             with_replay=self.cfg.log.checkpoint_replay)
        self.last_checkpoint = path
        for old in list_checkpoints(self.run_dir)[:-self.cfg.log.keep_checkpoints]:
            if old != path:
                os.remove(old)
        return path

def _process_start() -> float:
    """perf_counter() value at which this process started (for start-up time in the summary)."""
    from rlfarm.experiments.report.monitor import process_age_s

    age = process_age_s()
    return time.perf_counter() - (age or 0.0)
