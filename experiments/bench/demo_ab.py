"""The demo's whole process, this checkout against a git ref, in alternating pairs.

    python -m rlfarm.experiments.bench.demo_ab REF [--rounds 4] [--modes serial,ray] [--warmup 1]

A benchmark, not a test: it prints figures and judges nothing. Each side runs its own
`experiments/configs/cartpole_ppo.yaml` (the demo as that commit ships it: its code and its
hyperparameters) as `rlfarm train CONFIG --set farm.mode=MODE`, in a fresh interpreter, timed
from the parent's fork to the child's exit. REF is checked out with `git worktree add
--detach` into a temporary folder and imported from there, either as the `rlfarm` package
(a folder with a `rlfarm` link to the tree, as today) or, for commits before the package
layout (f47fec4, the first release), as the top-level packages `experiments`, `cluster`, ...

Within each round the two sides run back to back for each mode, and the order flips every
round (ref first in even rounds), so that a machine's load drifting over minutes falls on both
sides alike. It prints each run (seconds; start-up and training loop as its summary.json has them, so
the rest is the end of the run; env steps; the 1-minute load average at its start)
and, per mode, the medians, their ratio and the median of the per-round ratios, of wall time
and of CPU seconds (user + system of the process and of the children it waited for: in Ray
mode the processes Ray starts are only partly among them). On a shared machine the CPU
seconds move less with the load than the wall time does.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

DEMO_CONFIG = os.path.join("experiments", "configs", "cartpole_ppo.yaml")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
"""This checkout (the `rlfarm` package's folder)."""


@dataclass
class Side:
    """One commit's tree and how to import its CLI."""

    label: str
    root: str
    pythonpath: str
    cli_module: str


def side_for(label: str, root: str, scratch: str) -> Side:
    """The package layout (`from rlfarm.experiments...`) gets a folder holding an `rlfarm` link
    to the tree; the first release's top-level layout is imported from the tree itself."""
    with open(os.path.join(root, "experiments", "cli.py"), encoding="utf-8") as stream:
        packaged = "from rlfarm." in stream.read()
    if not packaged:
        return Side(label, root, root, "experiments.cli")
    link_dir = os.path.join(scratch, f"path-{label}")
    os.makedirs(link_dir, exist_ok=True)
    os.symlink(root, os.path.join(link_dir, "rlfarm"))
    return Side(label, root, link_dir, "rlfarm.experiments.cli")


def checkout(ref: str, scratch: str) -> str:
    path = os.path.join(scratch, "ref")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "--quiet", path, ref], check=True)
    return path


def run_demo(side: Side, mode: str, runs_dir: str, config: str) -> dict:
    """One whole `rlfarm train` process; its wall seconds and what its summary.json says."""
    env = {**os.environ, "PYTHONPATH": side.pythonpath}
    code = f"import sys; from {side.cli_module} import main; sys.exit(main())"
    argv = [sys.executable, "-c", code, "train", config, "--set", f"farm.mode={mode}",
            "--set", f"log.dir={runs_dir}"]
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=side.root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    summaries = glob.glob(os.path.join(runs_dir, "*", "summary.json"))
    summary = {}
    if summaries:
        with open(summaries[0], encoding="utf-8") as stream:
            summary = json.load(stream)
    if child.returncode:
        print(f"  {side.label} {mode}: exit {child.returncode}\n{output[-2000:]}", file=sys.stderr)
    return {"side": side.label, "mode": mode, "wall_s": round(wall, 3), "exit_code": child.returncode,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "env_steps": summary.get("env_steps"),
            "startup_s": summary.get("startup_s"), "train_loop_s": summary.get("train_loop_s"),
            "load_1min": round(load, 2)}


def summarize(rows: list[dict], modes: list[str], labels: tuple[str, str], key: str = "wall_s") -> list[str]:
    """Per mode: each side's median and range of `key`, the ratio of medians, the median
    per-round ratio."""
    ref, cur = labels
    lines = [f"{key:<7} {ref + ' median (range) s':>26} {cur + ' median (range) s':>26} "
             f"{'ratio of medians':>17} {'median pair ratio':>18}"]
    for mode in modes:
        times = {label: [r[key] for r in rows if r["mode"] == mode and r["side"] == label and
                         not r["exit_code"]] for label in labels}
        if not times[ref] or not times[cur] or len(times[ref]) != len(times[cur]):
            lines.append(f"{mode:<7} (a run failed: no pairs)")
            continue
        pairs = [c / r for r, c in zip(times[ref], times[cur])]
        cells = [f"{statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f})" for t in (times[ref], times[cur])]
        lines.append(f"{mode:<7} {cells[0]:>26} {cells[1]:>26} "
                     f"{statistics.median(times[cur]) / statistics.median(times[ref]):>16.3f}x "
                     f"{statistics.median(pairs):>17.3f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", metavar="REF", help="git ref to compare against, e.g. f47fec4")
    parser.add_argument("--rounds", type=int, default=4, help="timed pairs per mode (default: %(default)s)")
    parser.add_argument("--modes", default="serial,ray", help="comma-separated farm modes (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed serial runs per side first, to warm the file cache (default: %(default)s)")
    parser.add_argument("--config", default=DEMO_CONFIG,
                        help="config path inside each tree (default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write every run as JSON here")
    args = parser.parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if args.rounds < 1 or not modes or any(mode not in ("serial", "ray") for mode in modes):
        print("demo_ab: --rounds must be >= 1 and --modes a list of serial, ray", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rlfarm-demo-ab-") as scratch:
        ref_root = checkout(args.ref, scratch)
        try:
            sides = (side_for(args.ref, ref_root, scratch), side_for("this", ROOT, scratch))
            print(f"demo_ab: {args.ref} ({ref_root}) against this checkout ({ROOT}); "
                  f"{os.cpu_count()} CPUs", file=sys.stderr)
            for index in range(args.warmup):
                for side in sides:
                    run_demo(side, "serial", os.path.join(scratch, "runs", f"warmup-{side.label}-{index}"),
                             args.config)
            rows: list[dict] = []
            for round_index in range(args.rounds):
                order = sides if round_index % 2 == 0 else sides[::-1]
                for mode in modes:
                    for side in order:
                        runs_dir = os.path.join(scratch, "runs", f"{side.label}-{mode}-{round_index}")
                        row = run_demo(side, mode, runs_dir, args.config)
                        rows.append({**row, "round": round_index})
                        print(f"round {round_index} {mode:<6} {side.label:<8} {row['wall_s']:7.2f} s  "
                              f"cpu {row['cpu_s']:6.2f} s  "
                              f"start-up {row['startup_s']} s  loop {row['train_loop_s']} s  "
                              f"env steps {row['env_steps']}  load {row['load_1min']:.2f}  "
                              f"exit {row['exit_code']}", flush=True)
            labels = (sides[0].label, sides[1].label)
            print("\n".join(summarize(rows, modes, labels) + summarize(rows, modes, labels, "cpu_s")))
            if args.json:
                with open(args.json, "w", encoding="utf-8") as stream:
                    json.dump({"ref": args.ref, "cpu_count": os.cpu_count(), "runs": rows}, stream, indent=2)
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", ref_root], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
