"""What one command costs: whole-process wall time, CPU core-seconds of all its processes,
and CPU package joules where RAPL is readable.

    cost = run_measured([sys.executable, "-m", "rlfarm.experiments.cli", "train", ...])

The command runs as a fresh child process. Its wall time runs from the spawn to its exit
(interpreter start-up, imports, a Ray start and shutdown included). Its CPU time is the user
+ system time of the child and of every process below it (a Ray farm's GCS, raylet, runner
and learner actors), read from /proc every `SAMPLE_S` seconds: each process counts with its
last reading, so a process that exits between two readings loses at most that interval. The
child itself is read exactly at its exit (wait4's rusage, minus what it reaped, which the
readings already hold). Joules are the CPU packages' RAPL counters over the run: every
process on the socket counts, so on a shared machine the figure is an upper bound, and it is
None where RAPL is absent or unreadable (most VMs; root only on many kernels).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from typing import Sequence

from rlfarm.experiments.bench.proc_cpu import _descendants, _stat_fields

SAMPLE_S = 0.2


def _own_and_reaped_cpu(pid: str) -> tuple[float, float] | None:
    """(own user + system seconds, seconds of the children it reaped) of a live pid."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks


def _die_with_parent() -> None:
    """In the child: SIGTERM it when the measuring process dies (a killed pool worker)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_measured(argv: Sequence[str], env: dict | None = None, stdout=None, stderr=None,
                 cwd: str | None = None) -> dict:
    """Run `argv` to its end; returns {"exit_code", "wall_s", "cpu_core_s", "joules"}.

    stdout, stderr: as for subprocess.Popen (None: inherited)."""
    from rlfarm.experiments.report.tb_summaries import CpuEnergy

    energy = CpuEnergy()
    start = time.perf_counter()
    child = subprocess.Popen(list(argv), env=env, stdout=stdout, stderr=stderr, cwd=cwd,
                             preexec_fn=_die_with_parent)
    root = str(child.pid)
    last: dict[str, tuple[float, float]] = {}  # pid -> (own, reaped) at its latest reading
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in _descendants(child.pid):
                reading = _own_and_reaped_cpu(pid)
                if reading is not None:
                    last[pid] = reading
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, name="process-cost", daemon=True)
    sampler.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:
        child.terminate()
        child.wait()
        raise
    finally:
        done.set()
        sampler.join()
    wall_s = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    # The child's rusage includes the descendants it reaped; those are already in `last`.
    reaped = last.get(root, (0.0, 0.0))[1]
    root_cpu = max(usage.ru_utime + usage.ru_stime - reaped, last.get(root, (0.0, 0.0))[0])
    descendants_cpu = sum(own for pid, (own, _) in last.items() if pid != root)
    return {"exit_code": child.returncode, "wall_s": round(wall_s, 2),
            "cpu_core_s": round(root_cpu + descendants_cpu, 2),
            "joules": None if (joules := energy.joules_since_last()) is None else round(joules, 1)}
