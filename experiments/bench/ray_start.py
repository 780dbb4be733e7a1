"""What each of the embedded Ray's start-up patches saves, in whole-process seconds.

    python -m rlfarm.experiments.bench.ray_start --rounds 5 [--demo]

Each variant runs in a fresh interpreter that starts the embedded Ray exactly as `rlfarm
train` does (`cluster.ray_session.start_ray`) and closes it: "all patches", "plain"
(RLFARM_PLAIN_RAY=1: no patches and Ray's default system config), "no patches" (rlfarm's
system config kept), and "all but P" for each patch P in `cluster.ray_private.PATCH_NAMES`.
Variants alternate within each round, so a machine's load drifts over all of them alike.
A patch's saving is median("all but P") - median("all patches"). With --demo it also times
the whole demo (`rlfarm train experiments/configs/cartpole_ppo.yaml`), plain against patched.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

START_AND_CLOSE = """
import sys
from rlfarm.cluster import ray_private, ray_session
ray_private.PATCH_NAMES = tuple(name for name in ray_private.PATCH_NAMES if name not in sys.argv[1:])
ray_session.start_ray(num_cpus=2).close()
"""


def _time(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    from rlfarm.cluster.ray_private import PATCH_NAMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--demo", action="store_true", help="also time the demo, plain against patched")
    args = parser.parse_args(argv)
    base = {**os.environ, "RLFARM_PLAIN_RAY": "0"}
    variants: dict[str, tuple[list[str], dict[str, str]]] = {
        "all patches": ([sys.executable, "-c", START_AND_CLOSE], base),
        "plain": ([sys.executable, "-c", START_AND_CLOSE], {**base, "RLFARM_PLAIN_RAY": "1"}),
    }
    variants["no patches (system config kept)"] = ([sys.executable, "-c", START_AND_CLOSE, *PATCH_NAMES], base)
    for name in PATCH_NAMES:
        variants[f"all but {name}"] = ([sys.executable, "-c", START_AND_CLOSE, name], base)
    if args.demo:
        out = tempfile.mkdtemp(prefix="rlfarm-ray-start-")
        demo = [sys.executable, "-m", "rlfarm.experiments.cli", "train", "experiments/configs/cartpole_ppo.yaml",
                "--set", f"log.dir={out}", "--set", "log.pictures=false"]
        variants["demo, all patches"] = (demo, base)
        variants["demo, plain"] = (demo, {**base, "RLFARM_PLAIN_RAY": "1"})
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(args.rounds):
        order = list(variants) if round_index % 2 == 0 else list(variants)[::-1]
        for name in order:
            times[name].append(_time(*variants[name]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians["all patches"]
    print(f"{'variant':<52} {'median s':>9} {'min':>6} {'max':>6} {'saves s':>8}")
    for name, values in times.items():
        saving = medians[name] - reference if not name.startswith("demo") else float("nan")
        print(f"{name:<52} {medians[name]:9.2f} {min(values):6.2f} {max(values):6.2f} {saving:8.2f}")
    if args.demo:
        print(f"demo: plain - patched = {medians['demo, plain'] - medians['demo, all patches']:.2f} s")
    print(json.dumps({"rounds": args.rounds, "times_s": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
