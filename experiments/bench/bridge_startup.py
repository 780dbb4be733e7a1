"""What the simulator supervisor costs per start and stop.

    python -m rlfarm.experiments.bench.bridge_startup [--starts N]

Starts the compiled reference CartPole simulator (envs/sims/cartpole_sim.c, built with the
system's `cc`) N times with the supervisor (envs/sim_supervisor.py) and N times without it,
alternating so that a load change hits both alike, and prints the median and 90th percentile
of two spans for each:

- start: from the spawn to the end of the handshake (the program's hello read, its copies
  sent), what a runner waits for each simulator at start and restart;
- stop: `SimProcess.kill()`, from the request to the reaped process tree.

A C program's own start-up is about a millisecond, so the difference is the supervisor's own
cost (a `python -I -S` start, two forks, and for the stop two scans of /proc). For scale, the
last line is the bare interpreter's start and exit (`python -I -S -c pass`), the floor of any
supervisor written in Python, on the same machine at the same load.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from rlfarm.envs import bridge_process
from rlfarm.envs.sims import c_cartpole
from rlfarm.envs.subprocess_env import SimProcess


def measure(command: list[str], supervised: bool) -> tuple[float, float]:
    """(start seconds, stop seconds) of one simulator."""
    bridge_process.SUPERVISED = supervised
    begun = time.perf_counter()
    proc = SimProcess(command, 1, timeout_s=5.0)
    started = time.perf_counter()
    proc.kill()
    return started - begun, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=50, help="starts of each kind (default 50)")
    starts = parser.parse_args().starts
    command = [c_cartpole.build()]
    spans: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    bare = []
    for _ in range(starts):
        for supervised in (False, True):
            spans[supervised].append(measure(command, supervised))
        begun = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        bare.append((time.perf_counter() - begun) * 1e3)
    print(f"{starts} starts each of {command[0]}")
    print(f"{'':12} {'start median':>13} {'start p90':>10} {'stop median':>12} {'stop p90':>9}   (ms)")
    for supervised in (False, True):
        cols = []
        for which in (0, 1):
            values = sorted(span[which] * 1e3 for span in spans[supervised])
            cols += [statistics.median(values), values[int(0.9 * (len(values) - 1))]]
        name = "supervised" if supervised else "direct"
        print(f"{name:12} {cols[0]:13.1f} {cols[1]:10.1f} {cols[2]:12.1f} {cols[3]:9.1f}")
    bare.sort()
    print(f"{'python -I -S':12} {statistics.median(bare):13.1f} {bare[int(0.9 * (len(bare) - 1))]:10.1f}")


if __name__ == "__main__":
    main()
