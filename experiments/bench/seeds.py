"""`rlfarm seeds CONFIG --seeds 0-19 [--set k=v ...] [--workers 2] [--stay-steps N]`.

Trains one config over many seeds, each a whole `rlfarm train` run in serial farm mode (unless
`--set farm.mode=...` says otherwise), `--workers` runs at a time in separate processes. It
reports how many seeds reached `stop.target_return` within `--solve-steps`, the distribution of
the env steps they needed, and with `--stay-steps` whether each one stayed solved: the runs go
on past the target (stop.continue_after_target) to that many env steps, and a seed stayed
solved when the mean return of its last `log.return_window` episodes there is at least
`--stay-return`. Writes seeds.csv, seeds.png and seeds.json (with the CPU model) to --out.

The cost of each result (experiments/bench/process_cost.py): each seed's `rlfarm train` is a
fresh process, and its row has the env steps to the target, the wall time of that whole
process, the CPU core-seconds of all its processes (driver, runners, learner), and the CPU
package joules where RAPL is readable (package-wide: with --workers above 1 the runs share
it, so only --workers 1 gives a per-run figure).

The run length is max(solve, stay steps), and it is also the lr and clip annealing horizon.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from multiprocessing import get_context
from typing import Any

from rlfarm.experiments.errors import ConfigError

CSV_FIELDS = ("seed", "exit_code", "solved", "solved_at_env_steps", "env_steps",
              "final_return_mean", "stayed", "wall_s", "cpu_core_s", "joules", "run_dir")


def parse_seeds(text: str) -> list[int]:
    """"0-19" or "0,3,5-7" -> sorted distinct seeds; ConfigError names --seeds otherwise."""
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first:
                raise ValueError
            seeds.update(range(first, last + 1))
    except ValueError:
        raise ConfigError(f"--seeds: expected non-negative seeds like 0-19 or 0,3,5-7, got {text!r}") from None
    return sorted(seeds)


def default_stay_return(target: float) -> float:
    """5% of the target's size below it, rounded down to a multiple of 10 (CartPole: 475 -> 450)."""
    return math.floor((target - 0.05 * abs(target)) / 10) * 10


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('unknown' where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def blas_kernels() -> str:
    """The BLAS libraries loaded here (numpy's OpenBLAS, with the kernel it chose for this CPU)
    as threadpoolctl reports them, since a seed's run depends on them; or why not known."""
    try:
        import numpy  # noqa: F401 - loads its BLAS, so that threadpoolctl sees it
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl is not installed)"
    libraries = [f"{info.get('internal_api')} {info.get('version') or ''} {info.get('architecture') or ''}".strip()
                 for info in threadpool_info()]
    return "; ".join(libraries) or "none found"


def main(args: argparse.Namespace) -> int:
    from rlfarm.experiments.config import load_config

    seeds = parse_seeds(args.seeds)
    for name in ("workers", "solve_steps", "stay_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    overrides = ["farm.mode=serial", *args.overrides]
    cfg = load_config(args.config, overrides)  # a bad config or --set fails here, before any run
    target = cfg.stop.target_return
    if target is None:
        raise ConfigError("stop.target_return: seeds needs a target; set one with --set stop.target_return=R")
    solve_steps = args.solve_steps or cfg.stop.env_steps
    if not solve_steps:
        raise ConfigError("--solve-steps: the config has no stop.env_steps; give the budget here")
    stay_return = args.stay_return if args.stay_return is not None else default_stay_return(target)
    run_steps = max(solve_steps, args.stay_steps or 0)
    overrides += [f"stop.env_steps={run_steps}", "stop.wall_s=0", "log.progress=none",
                  f"stop.continue_after_target={'true' if args.stay_steps else 'false'}"]
    load_config(args.config, overrides)
    out = args.out or os.path.join(cfg.log.dir, f"seeds-{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(out) and os.listdir(out):
        raise ConfigError(f"--out: {out} exists and is not empty")
    print(f"rlfarm seeds: {cfg.name}, seeds {args.seeds} ({len(seeds)} runs of {run_steps:,} env steps, "
          f"{args.workers} at a time) -> {out}", file=sys.stderr)
    rows = run_all(args.config, overrides, seeds, out, args.workers)
    for row in rows:
        row["solved"] = row["solved_at_env_steps"] is not None and row["solved_at_env_steps"] <= solve_steps
        row["stayed"] = (row["final_return_mean"] is not None and row["final_return_mean"] >= stay_return
                         if args.stay_steps else None)
    meta = {"config": os.path.abspath(args.config), "overrides": overrides, "seeds": seeds,
            "target_return": target, "solve_steps": solve_steps, "stay_steps": args.stay_steps,
            "stay_return": stay_return, "return_window": cfg.log.return_window, "cpu": cpu_model(), "blas": blas_kernels(),
            "os_cpu_count": os.cpu_count(), "workers": args.workers}
    write_outputs(out, rows, meta)
    print(report(rows, meta))
    return 1 if any(row["exit_code"] for row in rows) else 0


def run_all(config: str, overrides: list[str], seeds: list[int], out: str, workers: int) -> list[dict]:
    """One training run per seed in `workers` fresh processes; rows in seed order."""
    os.environ.setdefault("RLFARM_TORCH_THREADS", "1")  # inherited by the workers
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    jobs = [(config, overrides, seed, os.path.join(out, "runs", f"seed-{seed}")) for seed in seeds]
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:  # leaving the `with` on an exception (Ctrl-C, SIGTERM) terminates the workers' runs
        with get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            rows = [_print_row(row) for row in pool.imap(run_one, jobs)]
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rows


def _print_row(row: dict) -> dict:
    solved = row["solved_at_env_steps"]
    print(f"  seed {row['seed']}: exit {row['exit_code']}, first at target "
          f"{'never' if solved is None else f'{solved:,}'}, final return "
          f"{_fmt(row['final_return_mean'])} ({row['wall_s']:.0f} s)", file=sys.stderr)
    return row


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_one(job: tuple[str, list[str], int, str]) -> dict[str, Any]:
    """`rlfarm train` for one seed as a fresh process, measured whole (process_cost.py);
    its messages go to <run_dir>.log. The pool's terminate ends it with this worker."""
    from rlfarm.experiments.bench.process_cost import run_measured

    config, overrides, seed, run_dir = job
    argv = [sys.executable, "-m", "rlfarm.experiments.cli", "train", config, "--run-dir", run_dir]
    for item in [*overrides, f"seed={seed}"]:
        argv += ["--set", item]
    with open(run_dir + ".log", "w", encoding="utf-8") as log:
        cost = run_measured(argv, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    code = cost["exit_code"]
    summary: dict[str, Any] = {}
    if os.path.exists(os.path.join(run_dir, "summary.json")):
        with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as stream:
            summary = json.load(stream)
    return {"seed": seed, "exit_code": code, "solved_at_env_steps": summary.get("solved_at_env_steps"),
            "env_steps": summary.get("env_steps"), "final_return_mean": summary.get("episode_return_mean"),
            "wall_s": cost["wall_s"], "cpu_core_s": cost["cpu_core_s"], "joules": cost["joules"], "run_dir": run_dir}


def report(rows: list[dict], meta: dict) -> str:
    """The per-seed table and the solve and stay lines, as printed."""
    lines = [f"{'seed':>4}  {'solved at':>10}  {'final return':>12}  {'stayed':>6}  {'wall s':>7}  "
             f"{'CPU core-s':>10}  {'joules':>8}"]
    for row in rows:
        solved_at = row["solved_at_env_steps"]
        lines.append(f"{row['seed']:>4}  {'-' if solved_at is None else f'{solved_at:,}':>10}  "
                     f"{_fmt(row['final_return_mean']):>12}  {_yes_no(row['stayed']):>6}  "
                     f"{_fmt(row.get('wall_s')):>7}  {_fmt(row.get('cpu_core_s')):>10}  {_fmt(row.get('joules')):>8}")
    steps = sorted(row["solved_at_env_steps"] for row in rows if row["solved"])
    solved = len(steps)
    lines.append(f"solved (mean of {meta['return_window']} >= {meta['target_return']:g}) within "
                 f"{meta['solve_steps']:,} env steps: {solved}/{len(rows)}")
    if steps:
        lines.append(f"env steps to solve: min {steps[0]:,}, median {statistics.median(steps):,.0f}, "
                     f"max {steps[-1]:,}")
    costs = [row for row in rows if row.get("cpu_core_s") is not None]
    if costs:
        joules = [row["joules"] for row in costs if row.get("joules") is not None]
        lines.append(f"cost per run (whole process): median wall {statistics.median(r['wall_s'] for r in costs):,.1f} s, "
                     f"median CPU {statistics.median(r['cpu_core_s'] for r in costs):,.1f} core-s, "
                     + (f"median {statistics.median(joules):,.0f} J" if joules else "joules n/a (RAPL not readable)"))
    if meta["stay_steps"]:
        stayed = sum(bool(row["stayed"]) for row in rows)
        lines.append(f"stayed solved (mean of last {meta['return_window']} >= {meta['stay_return']:g} "
                     f"at {max(meta['stay_steps'], meta['solve_steps']):,} env steps): {stayed}/{len(rows)}")
    lines.append(f"CPU: {meta['cpu']} ({meta['os_cpu_count']} cores, {meta['workers']} workers); "
                 f"BLAS: {meta.get('blas', 'unknown')}")
    return "\n".join(lines)


def write_outputs(out: str, rows: list[dict], meta: dict) -> None:
    with open(os.path.join(out, "seeds.csv"), "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows({key: row.get(key) for key in CSV_FIELDS} for row in rows)
    with open(os.path.join(out, "seeds.json"), "w", encoding="utf-8") as stream:
        json.dump({**meta, "rows": rows}, stream, indent=2)
    plot(os.path.join(out, "seeds.png"), rows, meta)


def plot(path: str, rows: list[dict], meta: dict) -> None:
    """Left: env steps to solve per seed (x: not within the budget). Right: final returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = [row["seed"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    solved = [row for row in rows if row["solved"]]
    left.bar([r["seed"] for r in solved], [r["solved_at_env_steps"] / 1e3 for r in solved], color="tab:blue")
    missed = [row["seed"] for row in rows if not row["solved"]]
    left.scatter(missed, [meta["solve_steps"] / 1e3] * len(missed), marker="x", color="tab:red", zorder=3)
    left.axhline(meta["solve_steps"] / 1e3, color="grey", linestyle=":")
    left.set(xlabel="seed", ylabel="k env steps", title=f"steps to mean return {meta['target_return']:g}")
    finals = [row["final_return_mean"] if row["final_return_mean"] is not None else float("nan") for row in rows]
    right.bar(seeds, finals, color="tab:green")
    right.axhline(meta["stay_return"], color="grey", linestyle=":")
    at = max(meta["stay_steps"] or 0, meta["solve_steps"])
    right.set(xlabel="seed", ylabel="return", title=f"last-{meta['return_window']} mean at {at / 1e3:,.0f}k steps")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
