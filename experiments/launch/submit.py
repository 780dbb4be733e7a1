"""`rlfarm submit CONFIG --address http://HEAD:8265`, `rlfarm jobs status|logs|stop ID`, and
`rlfarm jobs`, which lists the jobs: the cluster's Ray Jobs with --address (or $RAY_ADDRESS),
else this user's SLURM jobs.

`submit` checks the config here first (a typo fails at once, exit 2), then submits
`rlfarm train CONFIG ...` as a Ray Job with this project as its working dir, streams the
job's logs and exits with its result: 0 for SUCCEEDED, the training's exit code (or 1) for
FAILED, 1 for STOPPED. Ctrl-C stops following, not the job. With --no-wait it prints the
job id and returns.

The run dir: on a cluster, log.dir should be a shared filesystem path (an absolute one);
`submit` then fixes the run dir, `<log.dir>/<name>-<time>`, and prints it. A relative
log.dir would land inside the job's copy of the working dir on the head node.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import time

from rlfarm.cluster.launch.ship import SHIPPED_ENV_VAR
from rlfarm.experiments.errors import ConfigError

EXIT_STOPPED = 1


def build_entrypoint(config_path: str, overrides: list[str], run_dir: str | None,
                     project_root: str | None, command: str = "train") -> str:
    """The job's shell command: `python -m rlfarm.experiments.cli train ...` (or `sweep ...`,
    where run_dir is the sweep's --out) from the working dir.

    A config inside the project travels with the working dir (by its relative path); one
    outside it (or any, when project_root is None) travels inside the command, written to a
    temp file on the head first.
    """
    train = ["python", "-m", "rlfarm.experiments.cli", command]
    tail = [arg for item in overrides for arg in ("--set", item)]
    if run_dir:
        tail += ["--out" if command == "sweep" else "--run-dir", run_dir]
    absolute = os.path.abspath(config_path)
    relative = os.path.relpath(absolute, project_root) if project_root else ".."
    if not relative.startswith(".."):
        return shlex.join([*train, relative, *tail])
    with open(absolute, encoding="utf-8") as stream:
        text = stream.read()
    name = os.path.basename(absolute)
    # Every piece of config text is one shlex-quoted word outside any double quotes, so no
    # $(...), backtick or quote in the file's name or text reaches the shell as code.
    return (f'cfg="$(mktemp -d)"/{shlex.quote(name)} && printf %s {shlex.quote(text)} > "$cfg" && '
            + shlex.join(train) + ' "$cfg" ' + shlex.join(tail))


def submit_main(args: argparse.Namespace) -> int:
    from rlfarm.cluster.launch import jobs
    from rlfarm.experiments.config import load_config

    if getattr(args, "sweep", False):  # the sweep section and every swept value, checked here first
        from rlfarm.experiments.config import config_from_dict
        from rlfarm.experiments.launch.sweep import load_sweep_config

        cfg = config_from_dict(load_sweep_config(args.config, args.overrides)[0])
    else:
        cfg = load_config(args.config, args.overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    submission_id = f"rlfarm-{cfg.name}-{stamp}-{secrets.token_hex(2)}"
    run_dir = None
    if os.path.isabs(cfg.log.dir):
        run_dir = os.path.join(cfg.log.dir, f"{cfg.name}-{stamp}")
    else:
        print(f"rlfarm submit: warning: log.dir {cfg.log.dir!r} is relative, so the run lands in the "
              "job's working dir copy on the head; use --set log.dir=/shared/path", file=sys.stderr)
    shipment = _plan_shipment(cfg, getattr(args, "py_modules", None) or [])
    print(f"rlfarm submit: {shipment.line()}", file=sys.stderr)
    # The job's working dir is rlfarm's checkout, unless a bridge command's files replace it:
    # then a config inside the checkout cannot go by its relative path and travels as text.
    project_root = None if shipment.files else str(jobs.PROJECT_ROOT)
    entrypoint = build_entrypoint(args.config, args.overrides, run_dir, project_root,
                                  command="sweep" if getattr(args, "sweep", False) else "train")
    try:
        client = jobs.make_client(args.address)
        job_id = jobs.submit(client, entrypoint, submission_id=submission_id, shipment=shipment,
                             env_vars={SHIPPED_ENV_VAR: json.dumps(shipment.record())})
    except jobs.JobsError as err:
        print(f"rlfarm submit: {err}", file=sys.stderr)
        return 1
    if args.no_wait:
        print(job_id)
        where = f"; run dir {run_dir}" if run_dir else ""
        print(f"rlfarm submit: submitted{where}; follow with `rlfarm jobs logs {job_id}`", file=sys.stderr)
        return 0
    print(f"rlfarm submit: job {job_id}" + (f", run dir {run_dir}" if run_dir else ""), file=sys.stderr)
    try:
        jobs.follow_logs(client, job_id, lambda chunk: (sys.stdout.write(chunk), sys.stdout.flush()))
        status = jobs.wait_finished(client, job_id)
    except KeyboardInterrupt:
        print(f"\nrlfarm submit: stopped following; job {job_id} keeps running "
              f"(`rlfarm jobs stop {job_id}` stops it)", file=sys.stderr)
        return 130
    info = jobs.job_info(client, job_id)
    print(f"rlfarm submit: job {job_id} {status}" + (f": {info['message']}" if status != "SUCCEEDED" else ""),
          file=sys.stderr)
    return exit_code_for(status, info.get("driver_exit_code"))


def _plan_shipment(cfg, extra: list[str]):
    """What of the user's code goes with the job (cluster/launch/ship.py); ConfigError when it cannot."""
    from rlfarm.cluster.launch.ship import ShipError, plan_shipment

    for path in extra:
        if path not in cfg.farm.py_modules:
            cfg.farm.py_modules.append(path)
    try:
        return plan_shipment(cfg.env.id, cfg.env.imports, cfg.env.kwargs, cfg.farm.py_modules)
    except ShipError as err:
        raise ConfigError(f"farm.{err}") from None


def exit_code_for(status: str, driver_exit_code: int | None) -> int:
    """0 for SUCCEEDED; the driver's own non-zero code (or 1) for FAILED; 1 for STOPPED."""
    if status == "SUCCEEDED":
        return 0
    if status == "FAILED":
        return driver_exit_code if isinstance(driver_exit_code, int) and driver_exit_code > 0 else 1
    return EXIT_STOPPED


def jobs_main(args: argparse.Namespace) -> int:
    from rlfarm.cluster.launch import jobs

    if args.action is None:
        return list_main(args)
    if args.job_id is None:
        raise ConfigError(f"ID: `rlfarm jobs {args.action}` needs a job id")
    try:
        client = jobs.make_client(args.address)
        if args.action == "status":
            info = jobs.job_info(client, args.job_id)
            print(f"{info['job_id']}: {info['status']}" + (f" ({info['message']})" if info["message"] else ""))
            if info["driver_exit_code"] is not None:
                print(f"  exit code: {info['driver_exit_code']}")
            lines = info["entrypoint"].splitlines()
            print(f"  entrypoint: {lines[0]}{' ...' if len(lines) > 1 else ''}")
            return 0
        if args.action == "logs":
            sys.stdout.write(jobs.job_logs(client, args.job_id))
            return 0
        if args.action == "stop":
            stopped = jobs.stop_job(client, args.job_id)
            print(f"{args.job_id}: " + ("stop requested" if stopped else "already finished"))
            return 0
    except jobs.JobsError as err:
        print(f"rlfarm jobs: {err}", file=sys.stderr)
        return 1
    raise ConfigError(f"action: unknown action {args.action!r}")


def list_main(args: argparse.Namespace) -> int:
    """`rlfarm jobs`: one row per job, oldest first."""
    from rlfarm.cluster.launch import jobs, slurm

    if args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"):
        try:
            rows = jobs.list_jobs(jobs.make_client(args.address))
        except jobs.JobsError as err:
            print(f"rlfarm jobs: {err}", file=sys.stderr)
            return 1
        for row in rows:
            row["started"] = _clock(row["start_time"])
        print_table(rows, ("job_id", "status", "started", "entrypoint"))
        return 0
    reason = slurm.slurm_unavailable_reason()
    if reason and "no SLURM node is up" not in reason:
        print("rlfarm jobs: nothing to list here: give --address http://HEAD:8265 (or set $RAY_ADDRESS) "
              f"for Ray Jobs; SLURM jobs: {reason}", file=sys.stderr)
        return 1
    try:
        rows = slurm.list_jobs()
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"rlfarm jobs: {err}", file=sys.stderr)
        return 1
    print_table(rows, slurm.JOB_COLUMNS)
    return 0


def _clock(epoch_ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_ms / 1000)) if epoch_ms else "-"


def print_table(rows: list[dict], columns: tuple[str, ...]) -> None:
    """Aligned columns under an upper-case header; `(no jobs)` when there are none."""
    if not rows:
        print("(no jobs)")
        return
    cells = [[c.upper() for c in columns]] + [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
