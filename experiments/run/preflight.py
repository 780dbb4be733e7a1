"""The one preflight of every training: `rlfarm train`, `rlfarm.train` and each sweep trial.

In this order, so that a bad config, env or machine is refused before anything is written
or started, and each entry point says the same thing about it:

1. the resume lookup: the run dir's newest checkpoint (`--resume`) and its writer lock (a
   second writer is refused), then the config (a file, with overrides; by default the
   resumed run's own config.yaml);
2. the run dir: a new `<log.dir>/<name>-<time>` (claimed when the run starts), the user's
   `--run-dir` (refused when used), or the resumed run's own;
3. the env check: one copy of the env built in the driver, once. A bad env keyword is a
   ConfigError (one line, exit 2); the user's env failing in its `__init__` ends the run as
   `runner_start_failed` with its short report, a run dir and summary.json;
   3b. joining a Ray cluster: what of the user's code is shipped (cluster/launch/ship.py),
   printed in one line; too much is a ConfigError;
4. the capacity check (`capacity.py`), from the spaces the env check read (`--force` skips it);
5. Ray's start: on a thread for the CLI, so that it overlaps the driver's own imports; in the
   calling thread for the API (no thread is left behind in a user's script).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from rlfarm.experiments.config import ExperimentConfig, load_config
from rlfarm.experiments.errors import ConfigError
from rlfarm.experiments.run.run_dirs import (
    CHECKPOINT_DIR,
    RunDirLock,
    find_last_checkpoint,
    new_run_dir,
    refuse_used_run_dir,
)
from rlfarm.experiments.run.train import Training


def prepare_training(config: ExperimentConfig | str | os.PathLike | None, *, overrides: Sequence[str] = (),
                     address: str | None = None, resume: str | None = None, run_dir: str | None = None,
                     force: bool = False, background_start: bool = False, process_start_s: float,
                     callbacks: Sequence[Callable[[dict], Any]] = (), option: str = "--resume",
                     py_modules: Sequence[str] = (), announce: bool = True,
                     hparams_keys: Sequence[str] = ()) -> Training:
    """Steps 1-5 above: a Training ready to `run()`. Raises ConfigError, naming the field,
    for bad input. When the user's env fails to build, steps 4-5 are skipped and `run()`
    ends the run as runner_start_failed (run dir, summary.json, exit code 2 or 1).

    config: an ExperimentConfig, or a YAML file read with `overrides` (None with `resume`: the
    resumed run's config.yaml). address: a Ray cluster to join (farm.address).
    option: how the caller names `resume` in its messages ("--resume", or "resume" for the API).
    py_modules: paths added to farm.py_modules (`--py-module`).
    announce: False for `--check-nodes`, which starts no run (so names no run dir).
    hparams_keys: fields the HPARAMS row holds even at their default (a sweep's swept fields).
    """
    checkpoint, lock = None, None
    if resume is not None:  # 1.
        checkpoint = find_last_checkpoint(resume)
        if checkpoint is None:
            raise ConfigError(f"{option}: no checkpoint in {os.path.join(resume, CHECKPOINT_DIR)}")
        lock = RunDirLock(resume, option)  # one writer per run dir (held until run() ends)
        if config is None:
            config = os.path.join(resume, "config.yaml")
    try:
        if config is None:
            raise ConfigError("CONFIG: give a config file, or --resume RUN_DIR to continue a run")
        cfg = config if isinstance(config, ExperimentConfig) else load_config(config, list(overrides))
        if address:
            cfg.farm.address = address
        cfg.farm.py_modules += [path for path in py_modules if path not in cfg.farm.py_modules]
        if resume is not None:
            refuse_finished_run(resume, checkpoint, cfg, option)
        if run_dir is not None and resume is None:  # 2. early; claim_run_dir is the atomic check
            refuse_used_run_dir(run_dir)
        unique = run_dir is None and resume is None
        training = Training(cfg, resume or run_dir or new_run_dir(cfg), checkpoint, process_start_s,
                            callbacks=callbacks, unique_run_dir=unique, hparams_keys=hparams_keys)
        training.lock = lock
        _check(training, cfg, force, background_start, announce)
    except BaseException:
        if lock is not None:  # refused: the run dir is free again
            lock.release()
        raise
    return training


def _check(training: Training, cfg: ExperimentConfig, force: bool, background_start: bool, announce: bool) -> None:
    """Steps 3-5."""
    from rlfarm.envs.failures import EnvStartError

    try:
        spaces = training.check_env()  # 3.
    except EnvStartError as err:
        training.start_error = err
        return
    if cfg.farm.mode == "ray":  # 3b. what of the user's code travels to a cluster
        _plan_shipment(training)
    if not force:  # 4.
        from rlfarm.experiments.run.capacity import check_capacity

        check_capacity(cfg, *spaces)
    if cfg.farm.mode == "ray":  # 5.
        if announce:
            training.announce()  # before Ray's start, which takes seconds
        if background_start:
            from rlfarm.experiments.report.console import summarise_ray_startup_warnings

            summarise_ray_startup_warnings()
            training.start_farm_in_background()


def refuse_finished_run(run_dir: str, checkpoint: str, cfg: ExperimentConfig, option: str) -> None:
    """A run that ended on its budget or its target is finished: resuming it as it is would
    train one more batch past its own stop. Say so (ConfigError, nothing written) unless the
    resumed config moves the stop: a larger stop.env_steps, another target_return, or
    continue_after_target."""
    import json
    import zipfile

    import yaml

    from rlfarm.experiments.run.run_dirs import checkpoint_env_steps

    if not zipfile.is_zipfile(checkpoint):  # torch.save writes a zip: a damaged one is the loader's to report
        return
    try:
        with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as stream:
            reason = json.load(stream).get("exit_reason")
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as stream:
            written = (yaml.safe_load(stream) or {}).get("stop") or {}
    except (OSError, ValueError, yaml.YAMLError):
        return  # no summary (a killed run) or an unreadable one: resuming is what is asked for
    steps, budget = checkpoint_env_steps(checkpoint), cfg.stop.env_steps
    budget_raised = bool(budget) and budget > steps and budget != written.get("env_steps")
    if reason == "env_steps" and budget and steps >= budget:
        raise ConfigError(f"{option}: {run_dir} is finished: it ran its budget of stop.env_steps={budget} "
                          f"({steps} env steps done); raise it to train on, e.g. --set stop.env_steps={2 * budget}")
    if (reason == "target_return" and not cfg.stop.continue_after_target and not budget_raised
            and cfg.stop.target_return == written.get("target_return")):
        raise ConfigError(f"{option}: {run_dir} is finished: it reached stop.target_return="
                          f"{cfg.stop.target_return:g} at {steps} env steps; set stop.continue_after_target=true, "
                          "another target_return or a larger stop.env_steps to train on")


def _plan_shipment(training: Training) -> None:
    """Ray mode, joining a cluster: decide what of the user's code to ship, say it in one
    line (a ConfigError when it cannot go); inside a submitted job, take the submit's record."""
    from rlfarm.cluster.launch.ship import ShipError, already_shipped, plan_shipment
    from rlfarm.experiments.report.console import say

    cfg = training.cfg
    submitted = already_shipped()
    if submitted is not None:
        training.shipped = submitted
        return
    if not (cfg.farm.address or os.environ.get("RAY_ADDRESS", "").strip()):
        return  # an embedded Ray runs from this folder: nothing travels
    try:
        training.shipment = plan_shipment(cfg.env.id, cfg.env.imports, cfg.env.kwargs, cfg.farm.py_modules)
    except ShipError as err:
        raise ConfigError(f"farm.{err}") from None
    training.shipped = training.shipment.record()
    say(f"rlfarm train: {training.shipment.line()}")
