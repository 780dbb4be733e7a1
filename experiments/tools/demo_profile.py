"""Where the demo's process spends its CPU: start-up, per-update work, end of run.

    PYTHONPATH=<dir with an rlfarm link> python experiments/tools/demo_profile.py [--cli-module M] \
        [--out FILE.prof] -- train experiments/configs/cartpole_ppo.yaml --set farm.mode=serial

Runs the CLI in this process under cProfile with a CPU-time clock (time.process_time), so that
a machine shared with other jobs inflates the figures less than a wall clock would, and prints
the buckets below from the profile's cumulative times. `--cli-module experiments.cli` (with the
tree itself on PYTHONPATH) profiles commits before the package layout, such as f47fec4.
In Ray mode only the driver is profiled: the learner and the runners are other processes, and
the driver's waits for them cost it no CPU. `--clock wall` times the same buckets with a wall
clock instead, which in Ray mode shows where the driver waits: for Ray, the actors and the
first weights (`rlfarm train` builds the farm on a thread, f47fec4 too: the "waiting for
the farm's thread" bucket), for each update, and for Ray's shutdown.

The buckets match functions by file and name in both layouts; one that a commit lacks reads 0.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import sys
import time

BUCKETS: list[tuple[str, list[tuple[str, str]]]] = [
    ("whole process (the CLI's main)", [("cli.py", "main")]),
    ("start-up: import torch", [("torch/__init__.py", "<module>")]),
    ("start-up: Ray's start (driver)", [("cluster/ray_session.py", "start_ray")]),
    ("start-up: farm built, first weights", [("cluster/__init__.py", "make_farm")]),
    ("start-up: waiting for the farm's thread", [("concurrent/futures/_base.py", "_run:result"),
                                                 ("concurrent/futures/_base.py", "run:result")]),
    ("loop: all updates", [("cluster/serial.py", "iterate"), ("cluster/ray_farm.py", "iterate")]),
    ("  env steps", [("envs/base.py", "step")]),
    ("  inference (runner's numpy policy)", [("agents/numpy_acting.py", "act"), ("agents/numpy_acting.py", "value")]),
    ("  finiteness checks", [("cluster/runner.py", "_non_finite_copies"), ("agents/learner.py", "snapshot"),
                             ("agents/learner.py", "keep_if_finite")]),
    ("  learner update", [("cluster/learner.py", "update")]),
    ("  monitoring (record + report)", [("report/monitor.py", "record"), ("experiments/monitor.py", "record")]),
    ("end of run: final checkpoint", [("run/train.py", "_checkpoint"), ("experiments/train.py", "_checkpoint")]),
    ("end of run: picture", [("run/train.py", "_picture")]),
    ("end of run: HPARAMS, final scalars", [("report/monitor.py", "write_final")]),
    ("end of run: summary.json", [("report/monitor.py", "write_summary"), ("experiments/monitor.py", "write_summary")]),
    ("end of run: farm closed (Ray's shutdown)", [("cluster/ray_farm.py", "close"), ("cluster/serial.py", "close")]),
]
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
LOOP = [("run/train.py", "_loop"), ("experiments/train.py", "_loop")]


def cumulative(stats: pstats.Stats, patterns: list[tuple[str, str]]) -> float:
    """Sum of the cumulative CPU seconds of the functions matching (file suffix, name); a
    "caller:callee" name counts the callee only as called from that caller."""
    total = 0.0
    for (path, _line, name), (_cc, _nc, _tt, cum, callers) in stats.stats.items():  # type: ignore[attr-defined]
        for suffix, wanted in patterns:
            caller, _, callee = wanted.rpartition(":")
            if not path.endswith(suffix) or name != (callee or wanted):
                continue
            if caller:
                total += sum(c[3] for key, c in callers.items() if key[2] == caller)
            else:
                total += cum
    return total


def report(stats: pstats.Stats) -> list[str]:
    loop = cumulative(stats, LOOP)
    whole = cumulative(stats, BUCKETS[0][1])
    buckets = dict(BUCKETS)
    updates = cumulative(stats, buckets["loop: all updates"]) + cumulative(stats, buckets["  monitoring (record + report)"])
    lines = [f"{name:<42} {cumulative(stats, patterns):7.2f} s" for name, patterns in BUCKETS]
    lines.insert(1, f"{'start-up: all before the loop':<42} {whole - loop:7.2f} s")
    lines.append(f"{'end of run: all after the last update':<42} {loop - updates:7.2f} s")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli-module", default="rlfarm.experiments.cli")
    parser.add_argument("--out", default=None, help="also keep the profile here (pstats format)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: CPU seconds of this process (default); wall: seconds as they pass")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the CLI's arguments")
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    profile = cProfile.Profile(CLOCKS[args.clock])
    code = profile.runcall(lambda: importlib.import_module(args.cli_module).main(argv))
    if args.out:
        profile.dump_stats(args.out)
    print("\n".join(report(pstats.Stats(profile))))
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
