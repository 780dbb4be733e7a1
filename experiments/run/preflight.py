"""The one preflight of every training: `rlfarm train`, `rlfarm.train` and each sweep trial.

In this order, so that a bad config, env or machine is refused before anything is written
or started, and each entry point says the same thing about it:

1. the resume lookup: the run dir's newest checkpoint (`--resume`);
2. the run dir: a new `<log.dir>/<name>-<time>` (claimed when the run starts), the user's
   `--run-dir` (refused when used), or the resumed run's own;
3. the env check: one copy of the env built in the driver, once. A bad env keyword is a
   ConfigError (one line, exit 2); the user's env failing in its `__init__` ends the run as
   `runner_start_failed` with its short report, a run dir and summary.json;
4. the capacity check (`capacity.py`), from the spaces the env check read (`--force` skips it);
5. Ray's start: on a thread for the CLI, so that it overlaps the driver's own imports; in the
   calling thread for the API (no thread is left behind in a user's script).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from rlfarm.experiments.config import ExperimentConfig
from rlfarm.experiments.errors import ConfigError
from rlfarm.experiments.run.run_dirs import CHECKPOINT_DIR, find_last_checkpoint, new_run_dir, refuse_used_run_dir
from rlfarm.experiments.run.train import Training


def prepare_training(cfg: ExperimentConfig, *, resume: str | None = None, run_dir: str | None = None,
                     force: bool = False, background_start: bool = False, process_start_s: float,
                     callbacks: Sequence[Callable[[dict], Any]] = (), option: str = "--resume"
                     ) -> Training:
    """Steps 1-5 above: a Training ready to `run()`. Raises ConfigError, naming the field,
    for bad input. When the user's env fails to build, steps 4-5 are skipped and `run()`
    ends the run as runner_start_failed (run dir, summary.json, exit code 2 or 1).

    option: how the caller names `resume` in its messages ("--resume", or "resume" for the API).
    """
    checkpoint = None
    if resume is not None:  # 1.
        checkpoint = find_last_checkpoint(resume)
        if checkpoint is None:
            raise ConfigError(f"{option}: no checkpoint in {os.path.join(resume, CHECKPOINT_DIR)}")
    if run_dir is not None and resume is None:  # 2. early; claim_run_dir is the atomic check
        refuse_used_run_dir(run_dir)
    unique = run_dir is None and resume is None
    training = Training(cfg, resume or run_dir or new_run_dir(cfg), checkpoint, process_start_s,
                        callbacks=callbacks, unique_run_dir=unique)
    from rlfarm.envs.failures import EnvStartError

    try:
        spaces = training.check_env()  # 3.
    except EnvStartError as err:
        training.start_error = err
        return training
    if not force:  # 4.
        from rlfarm.experiments.run.capacity import check_capacity

        check_capacity(cfg, *spaces)
    if cfg.farm.mode == "ray":  # 5.
        training.announce()  # before Ray's start, which takes seconds
        if background_start:
            from rlfarm.experiments.report.console import summarise_ray_startup_warnings

            summarise_ray_startup_warnings()
            training.start_farm_in_background()
    return training
