"""What `rlfarm train` says in the terminal: lines wrapped to the terminal, the closing
sentence in words, the HPARAMS row, and Ray's start-up warnings summarised in one line."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

from rlfarm.experiments.config import ExperimentConfig

if TYPE_CHECKING:
    from rlfarm.cluster.farm_base import Farm


def say(text: str) -> None:
    """Print to stderr; on a terminal, wrapped at spaces to its width (paths are never broken).
    Logs and pipes (a SLURM job's output) keep each message on one line, to grep."""
    import shutil
    import textwrap

    if sys.stderr.isatty():
        width = max(shutil.get_terminal_size().columns - 1, 40)
        text = textwrap.fill(text, width=width, subsequent_indent="  ", break_on_hyphens=False,
                             break_long_words=False)
    print(text, file=sys.stderr, flush=True)


_EXIT_WORDS = {"wall_s": "reached its wall-time limit",
               "interrupted": "stopped on Ctrl-C", "sigterm": "stopped on SIGTERM",
               "callback": "stopped at a callback's request", "crashed": "crashed"}


def closing_sentence(summary: dict[str, Any], cfg: ExperimentConfig) -> str:
    """What happened, in words: "reached the target return 475 at 153.6k env steps in 3.9 s of
    training (13.3 s in all); return 489.9, 39.4k env steps/s"."""
    from rlfarm.experiments.report.progress import format_count

    steps = format_count(summary["env_steps"])
    if summary["exit_reason"] == "target_return":
        head = f"reached the target return {cfg.stop.target_return:g} at {steps} env steps"
    elif summary["exit_reason"] == "env_steps":
        budget = format_count(cfg.stop.env_steps or 0)
        head = f"ran its budget of {budget} env steps" + (f" ({steps} done)" if budget != steps else "")
    else:
        words = _EXIT_WORDS.get(summary["exit_reason"], summary["exit_reason"])
        head = f"{words} after {steps} env steps"
    in_all = f" ({summary['process_s']:.1f} s in all)" if summary.get("process_s") else ""
    ret = summary["episode_return_mean"]
    ret_text = "no episode finished" if ret is None else f"return {ret:.1f}"
    return (f"{head} in {summary['wall_s']:.1f} s of training{in_all}; {ret_text}, "
            f"{format_count(summary['env_steps_per_s'])} env steps/s")


_HPARAM_NAMES = {"env.id": "env", "algo.name": "algo", "algo.lr": "lr", "farm.num_runners": "runners",
                 "env.envs_per_runner": "envs_per_runner", "seed": "seed", "farm.mode": "farm_mode"}
"""The fields every HPARAMS row holds, under their short names."""

_NOT_HPARAMS = ("name", "log.", "farm.address")
"""Where a run writes, what it shows and which cluster it joins: not hyperparameters."""


def hparams(cfg: ExperimentConfig, keys: Sequence[str] = ()) -> dict[str, Any]:
    """The run's HPARAMS row: env, algo, lr, runners, envs_per_runner, seed and farm_mode;
    every other field (section.field, env.kwargs.* included) whose value differs from its
    default; and every field named in `keys` (a sweep's swept fields), so that runs that
    differ anywhere that matters differ in the table."""
    from rlfarm.experiments.config import to_dict

    flat, defaults = _flat(to_dict(cfg)), _flat(to_dict(ExperimentConfig()))
    row = {short: flat[key] for key, short in _HPARAM_NAMES.items()}
    for key, value in flat.items():
        if key in _HPARAM_NAMES or key.startswith(_NOT_HPARAMS):
            continue
        if key in keys or key not in defaults or defaults[key] != value:
            row[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return row


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"algo.lr": 0.001, "env.kwargs.grid_size": 32, ...}: nested sections as dotted keys."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class _RayStartupWarnings:
    """logging filter: Ray's token-auth WARNING (a long paragraph at every local start) becomes
    one line of ours; the mode and how to change it are all it says."""

    said = False

    def filter(self, record: Any) -> bool:
        message = record.getMessage()
        if "Token authentication is enabled" in message:
            if not self.said:
                say("rlfarm train: Ray token authentication is on (Ray's default; "
                    "RAY_AUTH_MODE=disabled turns it off)")
            self.said = True
            return False
        return True


def summarise_ray_startup_warnings() -> None:
    import logging

    from rlfarm.cluster.ray_private import AUTH_TOKEN_LOGGER

    logger = logging.getLogger(AUTH_TOKEN_LOGGER)
    if not any(isinstance(f, _RayStartupWarnings) for f in logger.filters):
        logger.addFilter(_RayStartupWarnings())


def print_closing_block(summary: dict[str, Any], cfg: ExperimentConfig, run_dir: str) -> None:
    """The closing block: what happened in words, then where the results are and what next."""
    say(f"rlfarm train: {closing_sentence(summary, cfg)}")
    errors = int(summary.get("env_errors") or 0)
    if errors:  # a run that went on despite its env's errors still says so at the end
        went_on = "" if summary["exit_reason"] == "crashed" else \
            f"; below farm.max_env_error_rate={cfg.farm.max_env_error_rate:g}, so training went on"
        say(f"rlfarm train: {errors} env errors: copies reset after an exception or a NaN/Inf state "
            f"(each runner's first one is printed above; farm/env_errors in TensorBoard){went_on}")
    if summary["exit_reason"] == "crashed":
        where = (f"{summary['last_checkpoint']}; continue with `rlfarm train --resume {run_dir}`"
                 if summary["last_checkpoint"] else "none was written")
        if str(summary["error"]).startswith("disk full"):  # one line: what, where, what is kept
            print(f"rlfarm train: {summary['error']}; last good checkpoint: {where}", file=sys.stderr)
        else:
            print(f"rlfarm train: crashed: {summary['error']}\n"
                  f"rlfarm train: last checkpoint: {where}", file=sys.stderr)
    lines = [("run dir", run_dir), ("summary", os.path.join(run_dir, "summary.json")),
             ("curves", f"tensorboard --logdir {run_dir}")]
    if summary["last_checkpoint"]:
        lines.append(("evaluate", f"rlfarm eval {run_dir}"))
    for label, text in lines:
        print(f"  {label:<9} {text}", file=sys.stderr)


def report_placement(farm: Farm, writer: Any, segment: int, final: bool) -> dict[str, Any] | None:
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
    record["segment"] = segment
    if not final:
        say(f"rlfarm train: placement: {describe_placement(record)}")
    tag = "placement/end" if final else "placement/start"
    try:
        writer.add_text(tag, "    " + json.dumps(record, indent=1).replace("\n", "\n    "),
                                farm.env_steps)
    except OSError:  # a full disk, said once by the monitor's close
        pass
    return record
