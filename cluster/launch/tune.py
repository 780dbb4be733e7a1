"""Hyperparameter sweeps on Ray Tune: the part of `rlfarm sweep` that talks to Ray.

experiments/launch/sweep.py owns the `sweep:` section, the trial function and the reports; this
module turns them into a Tuner:

- the search space: grid values become `tune.grid_search`, distributions become
  `tune.uniform` / `tune.loguniform` / `tune.choice`, keyed by the dotted config field;
- resources: a trial asks Tune for what its farm will use, one bundle for the trial's own
  process plus one per runner and learner actor in Ray mode (they are scheduled inside the
  trial's placement group), so concurrent trials never oversubscribe the cluster;
- ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning",
  https://arxiv.org/abs/1810.05934) on env steps, when asked for;
- `report`: one iteration's scalars to Tune, and Tune's answer on whether to go on.
"""
from __future__ import annotations

import atexit
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from rlfarm.cluster.config import FarmConfig

TUNE_DIR = "tune"
"""Tune's own experiment state, under the sweep dir (what `--resume` restores)."""

DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")
"""The `{kind: args}` forms a random search accepts for one parameter."""


def search_space(parameters: dict[str, Any], search: str) -> dict[str, Any]:
    """Tune's param_space for {field: values}: lists are grid axes (grid search) or choices
    (random search); {"uniform": [lo, hi]} and the other DISTRIBUTIONS are sampled."""
    from ray import tune

    space: dict[str, Any] = {}
    for name, spec in parameters.items():
        if isinstance(spec, dict):
            (kind, args), = spec.items()
            space[name] = getattr(tune, kind)(*args) if kind != "choice" else tune.choice(args)
        elif search == "grid":
            space[name] = tune.grid_search(list(spec))
        else:
            space[name] = tune.choice(list(spec))
    return space


def trial_bundles(farm_cfg: FarmConfig) -> list[dict[str, float]]:
    """Placement-group bundles of one trial: its own process, then (Ray mode) each actor."""
    from rlfarm.cluster.placement import actor_options

    bundles = [{"CPU": 1.0}]
    if farm_cfg.mode == "ray":
        for count, resources, field in (
                (farm_cfg.num_runners, farm_cfg.runner_resources, "farm.runner_resources"),
                (farm_cfg.num_learners, farm_cfg.learner_resources, "farm.learner_resources")):
            options = actor_options(resources, field)
            bundle = {"CPU": float(options.get("num_cpus", 1))}
            if options.get("num_gpus"):
                bundle["GPU"] = float(options["num_gpus"])
            bundles += [bundle] * count
    return bundles


_trial_done = threading.Event()
"""Set once this process's trial has written its last checkpoint and summary."""
KEEP_ALIVE_S = 300.0
"""How long a stopped trial's process waits for its training thread to finish writing (an
update and a checkpoint, on a loaded machine)."""
_exit_held = False


def report(metrics: dict[str, Any]) -> bool:
    """Send one iteration's numbers to Tune; True when Tune asks the trial to stop.

    Tune answers a stop (ASHA pruning the trial, or max_t) by raising SystemExit inside the
    next report, and then ends the trial's actor. Turning the exit into a return value lets
    the run stop after this update like any other stop. The training runs on a daemon thread
    that the actor's exit would cut short, and Ray's actor exit runs atexit handlers but does
    not wait for other threads: an atexit handler holds the process (up to KEEP_ALIVE_S) until
    `trial_finished` says the checkpoint and summary are written.
    """
    from ray import tune

    scalars = {key: float(value) for key, value in metrics.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    try:
        tune.report(scalars)
    except SystemExit:
        return True
    return False


def trial_started() -> None:
    """Called by a trial before it trains: from now on the process's exit (Tune ending the
    actor after ASHA's stop) waits until `trial_finished`, up to KEEP_ALIVE_S. Held from the
    start, not from the stop's SystemExit: Tune may end the actor while the training thread
    is still in an update, before its next report sees the stop (a loaded machine), and the
    trial's summary.json would then never be written."""
    global _exit_held
    _trial_done.clear()
    if not _exit_held:
        atexit.register(_trial_done.wait, KEEP_ALIVE_S)
        _exit_held = True


def trial_finished() -> None:
    """Called by the trial when its run has ended (files written): the process may exit."""
    _trial_done.set()


def run_trials(trial: Callable[[dict[str, Any]], None], *, space: dict[str, Any], bundles: list[dict],
               sweep_dir: Path, metric: str, mode: str, num_samples: int, asha: dict[str, Any] | None,
               max_concurrent: int | None, resume: bool) -> tuple[list[dict[str, Any]], bool]:
    """Run `trial(params)` over the space on the connected Ray cluster, or resume the sweep
    whose state is in `sweep_dir`. Blocks until every trial has ended, or Ctrl-C; returns
    (one row per trial: {"trial_id", "params", "last" (its last report), "best" (the best value
    of `metric` it reported, or None), "error" (None or the message)}, interrupted)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler

    # Each trial writes its own TensorBoard run; Tune keeps only the results it reads back.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    trainable = tune.with_resources(trial, tune.PlacementGroupFactory(bundles))
    state = sweep_dir.resolve() / TUNE_DIR
    if resume and tune.Tuner.can_restore(str(state)):  # else stopped before Tune saved a state: start it
        tuner = tune.Tuner.restore(str(state), trainable, resume_unfinished=True, restart_errored=True)
    else:
        scheduler = ASHAScheduler(time_attr="env_steps", **asha) if asha is not None else None
        tuner = tune.Tuner(
            trainable, param_space=space,
            run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(state.parent), verbose=0,
                                      callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]),
            tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=num_samples,
                                        scheduler=scheduler, max_concurrent_trials=max_concurrent))
    results, interrupted = _fit(tuner)
    rows = []
    for result in results:
        error = result.error
        rows.append({"trial_id": result.metrics.get("trial_id") or _trial_id_from_path(result.path),
                     "params": dict(result.config or {}), "last": dict(result.metrics or {}),
                     "best": _best(result, metric, mode),
                     "error": None if error is None else str(error).strip().splitlines()[-1]})
    return rows, interrupted


def _fit(tuner: Any) -> tuple[Any, bool]:
    """tuner.fit(), and whether Ctrl-C (or SIGUSR1) ended it. Tune catches the first SIGINT
    itself, ends the trials and returns as if the sweep were done; its handler then puts back
    the handler it found, which is how the interruption is seen here (a plain `signal` query:
    after a run that was not interrupted, Tune's own handler is still installed)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return tuner.fit(), False

    def marker(signum: int, frame: Any) -> None:  # a SIGINT outside Tune's run: stop as usual
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, marker) for sig in (signal.SIGINT, signal.SIGUSR1)}
    try:
        results = tuner.fit()
        tune_catches_sigint = not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") or 0)
        interrupted = tune_catches_sigint and signal.getsignal(signal.SIGINT) is marker
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return results, interrupted


def _best(result: Any, metric: str, mode: str) -> float | None:
    """The best value of `metric` over a trial's reports (None when it reported none)."""
    import math

    frame = getattr(result, "metrics_dataframe", None)
    if frame is None or metric not in frame:
        return None
    values = [float(v) for v in frame[metric].tolist() if v is not None and math.isfinite(float(v))]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def current_trial_id() -> str:
    """The id of the Tune trial this process runs (names the trial's run dir)."""
    from ray import tune

    return tune.get_context().get_trial_id()


def _trial_id_from_path(path: str | None) -> str:
    """Tune names a trial's folder `<trainable>_<id>_<index>_<params>_<time>`; id = xxxxx_NNNNN."""
    found = re.search(r"_([0-9a-f]{5}_\d{5})_", os.path.basename(path or ""))
    return found.group(1) if found else ""
