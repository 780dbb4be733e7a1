"""`rlfarm sweep CONFIG`: hyperparameter sweeps on Ray Tune, each trial one rlfarm run.

The config is an experiment config plus a `sweep` section:

    sweep:
      parameters:                     # dotted config fields, as with --set
        algo.lr: [1.0e-3, 2.5e-3]     # a grid axis (search: grid) or the choices (search: random)
        algo.clip_coef: {uniform: [0.1, 0.3]}   # random search: uniform, loguniform, randint, choice
      search: grid                    # grid: every combination; random: num_samples draws
      num_samples: 1                  # grid: repeats of the whole grid; random: trials
      metric: episode_return_mean     # what "best" means, from the trials' reports
      mode: max
      asha: {grace_period: 20000, reduction_factor: 2}   # optional: prune by env steps
      max_concurrent: null            # default: as many as the cluster's resources allow
      max_trials: 1000                # refuse a larger sweep before Ray starts
      rank_by: last                   # last: the metric at a trial's end; best: its best report

Each trial trains the base config with its parameters through the same loop as `rlfarm train`
(experiments/api.py), reporting every iteration to Tune, and writes its own run dir. ASHA
stops a trial after its current update, with a checkpoint and a summary (exit_reason
"callback"). Ctrl-C ends the sweep as interrupted (exit 130) with the line that resumes it. The sweep dir (--out, default <log.dir>/<name>-sweep-<time>) holds:

    trials/trial-<id>/   one rlfarm run dir per trial (`rlfarm.Run` opens it)
    sweep.csv, sweep.md  one row per trial, best first
    sweep.png            every trial's return against env steps
    sweep.yaml, tune/    the config and Tune's state, for `rlfarm sweep --resume DIR`
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rlfarm.experiments.errors import ConfigError
from rlfarm.experiments.launch.sweep_report import cell, rank, settings_has_asha, table, write_reports

SECTION_KEYS = ("parameters", "search", "num_samples", "metric", "mode", "asha", "max_concurrent",
                "max_trials", "rank_by")
MAX_TRIALS = 1000
"""The default `sweep.max_trials`: a grid is refused past it before anything starts."""
TRIAL_METRICS = ("episode_return_mean", "episodes", "wall_s", "env_steps", "iteration", "batch_env_steps",
                 "env_errors", "runner_restarts", "runner_timeouts", "dropped_fragments")
"""What every trial reports to Tune (the loop's metrics and the monitor's view, see
experiments/run/train.py `_run_callbacks`), besides the keys under TRIAL_METRIC_PREFIXES."""
TRIAL_METRIC_PREFIXES = ("losses/", "perf/", "learner/")
SCALE_KEYS = ("num_runners", "envs_per_runner", "num_learners", "seconds", "warmup_iterations")
"""Keys of `rlfarm scale`'s own `sweep` section, to point a user at the right command."""
ASHA_KEYS = ("grace_period", "reduction_factor", "max_t")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")  # cluster/launch/tune.py samples these


@dataclass
class SweepSettings:
    """The `sweep` section of a hyperparameter sweep config."""

    parameters: dict[str, Any] = field(default_factory=dict)
    """{dotted.field: [values] or {distribution: args}}: what varies between trials."""
    search: str = "grid"
    """"grid" (every combination of the lists) or "random" (num_samples draws)."""
    num_samples: int = 1
    """Random search: the number of trials; grid search: repeats of the whole grid."""
    metric: str = "episode_return_mean"
    """The reported scalar that ranks trials (and that ASHA compares)."""
    mode: str = "max"
    """"max" or "min": which end of `metric` is best."""
    asha: dict[str, Any] | None = None
    """ASHA settings in env steps ({grace_period, reduction_factor, max_t}); None: no pruning."""
    max_concurrent: int | None = None
    """At most this many trials at once; None lets the cluster's free resources decide."""
    max_trials: int = MAX_TRIALS
    """A sweep of more trials (grid size x num_samples, or num_samples) is refused at once."""
    rank_by: str = "last"
    """"last": rank by the metric's value at the trial's end (its summary.json); "best": by the
    best value the trial reported along the way."""


def parse_settings(section: Any) -> SweepSettings:
    """Check the `sweep` section; ConfigError names the field."""
    if not isinstance(section, dict) or not section:
        raise ConfigError("sweep: the config needs a `sweep` section with `parameters` (see `rlfarm sweep --help`)")
    if "parameters" not in section and any(key in section for key in SCALE_KEYS):
        raise ConfigError("sweep: this is a scaling sweep (num_runners, envs_per_runner, ...): "
                          "run it with `rlfarm scale`")
    unknown = sorted(set(section) - set(SECTION_KEYS))
    if unknown:
        raise ConfigError(f"sweep.{unknown[0]}: unknown key; the section takes {list(SECTION_KEYS)}")
    settings = SweepSettings(**section)
    if not isinstance(settings.parameters, dict) or not settings.parameters:
        raise ConfigError("sweep.parameters: give at least one field, e.g. {algo.lr: [1.0e-3, 3.0e-3]}")
    if settings.search not in ("grid", "random"):
        raise ConfigError(f"sweep.search: 'grid' or 'random', got {settings.search!r}")
    if settings.mode not in ("max", "min"):
        raise ConfigError(f"sweep.mode: 'max' or 'min', got {settings.mode!r}")
    if not isinstance(settings.num_samples, int) or settings.num_samples < 1:
        raise ConfigError(f"sweep.num_samples: an integer >= 1, got {settings.num_samples!r}")
    if settings.max_concurrent is not None and (not isinstance(settings.max_concurrent, int)
                                                or settings.max_concurrent < 1):
        raise ConfigError(f"sweep.max_concurrent: an integer >= 1 or null, got {settings.max_concurrent!r}")
    if not isinstance(settings.max_trials, int) or isinstance(settings.max_trials, bool) or settings.max_trials < 1:
        raise ConfigError(f"sweep.max_trials: an integer >= 1, got {settings.max_trials!r}")
    if settings.rank_by not in ("last", "best"):
        raise ConfigError(f"sweep.rank_by: 'last' or 'best', got {settings.rank_by!r}")
    if not isinstance(settings.metric, str) or not (
            settings.metric in TRIAL_METRICS or settings.metric.startswith(TRIAL_METRIC_PREFIXES)):
        raise ConfigError(f"sweep.metric: {settings.metric!r} is not reported by a trial; use one of "
                          f"{list(TRIAL_METRICS)} or a key under {list(TRIAL_METRIC_PREFIXES)}")
    for name, spec in settings.parameters.items():
        _check_parameter(name, spec, settings.search)
    trials = count_trials(settings)
    if trials > settings.max_trials:
        sizes = " x ".join(str(len(spec)) for spec in settings.parameters.values() if isinstance(spec, list))
        raise ConfigError(f"sweep.parameters: {trials} trials ({sizes or 'random'} x num_samples "
                          f"{settings.num_samples}) is more than sweep.max_trials = {settings.max_trials}; "
                          "raise sweep.max_trials to run them")
    if settings.asha is not None:
        if not isinstance(settings.asha, dict) or set(settings.asha) - set(ASHA_KEYS):
            raise ConfigError(f"sweep.asha: a mapping of {list(ASHA_KEYS)} (in env steps), got {settings.asha!r}")
        for key, value in settings.asha.items():
            if not isinstance(value, (int, float)) or value <= (1 if key == "reduction_factor" else 0):
                raise ConfigError(f"sweep.asha.{key}: a positive number, got {value!r}")
    return settings


def _check_parameter(name: str, spec: Any, search: str) -> None:
    where = f"sweep.parameters.{name}"
    if isinstance(spec, dict):
        if search != "random" or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise ConfigError(f"{where}: a distribution needs `search: random` and one of {list(DISTRIBUTIONS)}, "
                              f"e.g. {{loguniform: [1.0e-4, 1.0e-2]}}")
        if not isinstance(next(iter(spec.values())), list):
            raise ConfigError(f"{where}: the distribution's arguments are a list, e.g. [0.1, 0.3]")
    elif not isinstance(spec, list) or not spec:
        raise ConfigError(f"{where}: a non-empty list of values, e.g. [1.0e-3, 3.0e-3]")


def count_trials(settings: SweepSettings) -> int:
    """How many trials the sweep runs: grid size x num_samples, or num_samples (random)."""
    if settings.search != "grid":
        return settings.num_samples
    return math.prod(len(spec) for spec in settings.parameters.values()) * settings.num_samples


def parameter_values(spec: Any) -> list[Any]:
    """Values to check a parameter with: the list, or a distribution's arguments."""
    return list(spec) if isinstance(spec, list) else list(next(iter(spec.values())))


def with_parameters(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the raw config with the dotted fields of `params` set (like --set)."""
    from rlfarm.experiments.config import apply_overrides, override_text

    return apply_overrides(copy.deepcopy(raw), [override_text(key, value) for key, value in params.items()])


def load_sweep_config(path: str | os.PathLike, overrides: list[str] = ()) -> tuple[dict[str, Any], SweepSettings]:
    """(raw experiment mapping without `sweep`, its settings); every swept value is checked
    against the config's own rules, so a typo fails before any trial starts."""
    from rlfarm.experiments.bench.scale import load_raw_with_section
    from rlfarm.experiments.config import config_from_dict

    raw, section = load_raw_with_section(str(path), list(overrides))
    settings = parse_settings(section)
    config_from_dict(copy.deepcopy(raw))
    for name, spec in settings.parameters.items():
        for value in parameter_values(spec):
            try:
                config_from_dict(with_parameters(raw, {name: value}))
            except ConfigError as err:
                raise ConfigError(f"sweep.parameters.{name}={value!r}: {err}") from None
    return raw, settings


def trial(params: dict[str, Any], *, raw: dict[str, Any], trials_dir: str) -> None:
    """One Tune trial: train the base config with `params`, reporting each iteration.
    A trial restarted by a resumed sweep continues its run dir from its last checkpoint."""
    from rlfarm.cluster.launch import tune as cluster_tune
    from rlfarm.experiments import api
    from rlfarm.experiments.config import config_from_dict
    from rlfarm.experiments.run.run_dirs import list_checkpoints

    # No physics pictures in trials: sweep.png has the curves, and a trial that ASHA stops
    # must write its checkpoint and summary before Tune ends its process (cluster/launch/tune.py).
    data = with_parameters(raw, {**params, "log.progress": "none", "log.pictures": False})
    cfg = config_from_dict(data)
    run_dir = os.path.join(trials_dir, f"trial-{cluster_tune.current_trial_id()}")

    def to_tune(metrics: dict[str, Any]) -> dict[str, bool] | None:
        if metrics.get("episode_return_mean") is None:  # nothing to rank by before the first episode
            return None
        return {"stop": cluster_tune.report(metrics)}

    cluster_tune.trial_started()  # from here on, the actor's exit waits for trial_finished()
    resume = run_dir if list_checkpoints(run_dir) else None
    if resume is None and os.path.isdir(run_dir):  # this trial restarted before its first checkpoint
        shutil.rmtree(run_dir)
    try:
        api.train(cfg, callbacks=[to_tune], run_dir=None if resume else run_dir, resume=resume)
    finally:
        cluster_tune.trial_finished()


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C outside Tune's own handling (Ray's start or shutdown, the reports): the sweep dir
    is known by then, so the line that resumes the sweep can name it."""

    def __init__(self, sweep_dir: Path):
        super().__init__(str(sweep_dir))
        self.dir = sweep_dir


@dataclass
class SweepResult:
    """What `rlfarm.sweep` returns: the sweep dir and its trials, best first."""

    dir: Path
    rows: list[dict[str, Any]]
    """One dict per trial (sweep_report.ROW_FIELDS plus the swept parameters), best first."""
    interrupted: bool = False
    """Ctrl-C (or SIGUSR1) ended the sweep before its trials did: `--resume` continues it."""

    @property
    def best(self):
        """The best trial's run (an `rlfarm.Run`); None when no trial has a value to rank by."""
        from rlfarm.experiments.api import Run

        if not self.rows or self.rows[0]["_metric"] is None:
            return None
        return Run(self.rows[0]["run_dir"])


def sweep(config: str | os.PathLike, overrides: list[str] | dict[str, Any] | None = None, *,
          out: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
          address: str | None = None) -> SweepResult:
    """Run the sweep of a config file (or resume the sweep dir `resume`) on the embedded
    Ray, or on the cluster at `address`; blocks until every trial has ended."""
    from rlfarm.cluster.launch import tune as cluster_tune
    from rlfarm.cluster.ray_session import start_ray
    from rlfarm.experiments.config import config_from_dict

    if isinstance(overrides, dict):
        from rlfarm.experiments.config import override_text

        overrides = [override_text(key, value) for key, value in overrides.items()]
    if resume is not None:
        sweep_dir = Path(resume)
        if not (sweep_dir / "sweep.yaml").is_file():
            raise ConfigError(f"--resume: {sweep_dir} is not a sweep dir (no sweep.yaml in it)")
        raw, settings = load_sweep_config(sweep_dir / "sweep.yaml")
    else:
        raw, settings = load_sweep_config(config, list(overrides or ()))
        sweep_dir = Path(out) if out else Path(raw.get("log", {}).get("dir", "runs")) / \
            f"{raw['name']}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
        sweep_dir.mkdir(parents=True, exist_ok=False)
        (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump({**raw, "sweep": _plain_settings(settings)},
                                                             sort_keys=False))
    base = config_from_dict(copy.deepcopy(raw))
    trials_dir = (sweep_dir / "trials").resolve()
    trials_dir.mkdir(exist_ok=True)
    asha = None
    if settings.asha is not None:  # max_t past the budget: a trial ends its run on its own stop rule
        asha = {"max_t": base.stop.env_steps + 1, **settings.asha}
    from rlfarm.experiments.report.console import summarise_ray_startup_warnings

    summarise_ray_startup_warnings()  # Ray's auth warning in one line
    if not sys.stderr.isatty():  # the trials' log prefixes without colour codes in a pipe or a file
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    try:
        session = start_ray(address or base.farm.address)
        try:
            import functools

            rows, interrupted = cluster_tune.run_trials(
                functools.partial(trial, raw=raw, trials_dir=str(trials_dir)),
                space=cluster_tune.search_space(settings.parameters, settings.search),
                bundles=cluster_tune.trial_bundles(base.farm), sweep_dir=sweep_dir, metric=settings.metric,
                mode=settings.mode, num_samples=settings.num_samples, asha=asha,
                max_concurrent=settings.max_concurrent, resume=resume is not None)
        finally:
            session.close()
        result = SweepResult(sweep_dir, rank(table(rows, trials_dir, settings, interrupted), settings),
                             interrupted)
        write_reports(result, settings)
    except KeyboardInterrupt:
        raise SweepInterrupted(sweep_dir) from None
    return result


def _plain_settings(settings: SweepSettings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in fields(settings)}


def main(args: argparse.Namespace) -> int:
    if not args.config and not args.resume:
        raise ConfigError("CONFIG: give a sweep config, or --resume SWEEP_DIR to continue a sweep")
    try:
        result = sweep(args.config, args.overrides, out=args.out, resume=args.resume, address=args.address)
    except SweepInterrupted as stopped:
        print(f"rlfarm sweep: interrupted; continue with `rlfarm sweep --resume {stopped.dir}`", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the sweep dir was made: nothing to resume
        print("rlfarm sweep: interrupted before it started", file=sys.stderr)
        return 130
    if result.interrupted:
        print(f"rlfarm sweep: interrupted; {len(result.rows)} trials so far in {result.dir}; continue with "
              f"`rlfarm sweep --resume {result.dir}`", file=sys.stderr)
        return 130
    best = result.rows[0] if result.rows and result.rows[0]["_metric"] is not None else None
    stopped = sum(bool(r['stopped_early']) for r in result.rows)
    print(f"rlfarm sweep: {len(result.rows)} trials in {result.dir}"
          + (f"; {stopped} stopped early by ASHA" if settings_has_asha(result) else ""), file=sys.stderr)
    if best is None:
        print("rlfarm sweep: no trial has a result to rank by", file=sys.stderr)
    else:
        print(f"rlfarm sweep: best {best['trial']}: return {cell(best['episode_return_mean'])} "
              f"({best['run_dir']})", file=sys.stderr)
    print(f"rlfarm sweep: {result.dir / 'sweep.md'}, {result.dir / 'sweep.csv'}, {result.dir / 'sweep.png'}",
          file=sys.stderr)
    return 0
