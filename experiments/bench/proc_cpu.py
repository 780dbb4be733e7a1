"""CPU time of a local Ray session's processes, read from Linux's /proc, for the farm bench.

An embedded Ray (started by this process) runs as this process's descendants: the GCS and
the raylet are its children, the workers and actors the raylet's. Summing their CPU over a
measurement window gives what the whole farm cost on this machine, so the bench can say how
much of it was the runners' sampling and how much was Ray moving fragments around.

Where that is not what runs here (a joined cluster, whose raylet is not our descendant, or a
system without /proc), `SessionCpu.start()` returns None and the bench reports no CPU figures.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


def _stat_fields(pid: str) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, ...]; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()  # the name in parentheses may hold spaces


def _descendants(root: int) -> list[str]:
    """Pids of `root` and every live process below it."""
    children: dict[str, list[str]] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            fields = _stat_fields(pid)
            if fields is not None:
                children.setdefault(fields[1], []).append(pid)
    tree, frontier = [str(root)], [str(root)]
    while frontier:
        frontier = [child for pid in frontier for child in children.get(pid, [])]
        tree += frontier
    return tree


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(pids: list[str]) -> dict[str, float]:
    """User + system CPU seconds so far of each live pid (gone ones are left out)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return out


@dataclass
class SessionCpu:
    """CPU seconds of an embedded Ray session's processes between `start()` and `stop()`."""

    pids: list[str]
    at_start: dict[str, float]

    @classmethod
    def start(cls) -> "SessionCpu | None":
        """Begin a window; None where the local Ray is not this process's own (see module doc)."""
        if not os.path.isdir("/proc/self/task"):
            return None
        pids = _descendants(os.getpid())
        if not any("raylet" in _cmdline(pid) for pid in pids):
            return None
        return cls(pids, cpu_seconds(pids))

    def stop(self) -> dict[str, float]:
        """CPU seconds each session process used since `start()`, by pid. Processes that
        started or exited inside the window are left out (a restarted runner's, say)."""
        now = cpu_seconds(self.pids)
        return {pid: now[pid] - self.at_start[pid] for pid in now if pid in self.at_start}
