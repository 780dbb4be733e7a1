"""The embedded Ray dies with its driver, even a SIGKILLed one.

Ray's own processes outlive a killed driver: the raylet's dashboard and runtime-env agents
notice their raylet's death only by polling, about a minute later. So the driver starts a
small reaper process (this file run as a script: no rlfarm, numpy or Ray imports) that holds
the read end of a pipe. Every `SNAPSHOT_INTERVAL_S` it records the driver's descendants
(pid and start time, from /proc). When the pipe closes without the word "done" (the driver
died), it sends SIGTERM to every recorded process still alive, and SIGKILL to those alive
`TERM_GRACE_S` later. A clean `RaySession.close()` writes "done" first, and the reaper exits
without touching anything. Bound: the embedded Ray's processes are gone
`SNAPSHOT_INTERVAL_S + TERM_GRACE_S` (plus scheduling) after the driver died; those started
in the last snapshot interval go with their raylet.

Linux only (/proc); elsewhere `start_reaper` returns None and Ray's own fate sharing applies.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

SNAPSHOT_INTERVAL_S = 0.5
"""How often the reaper records the driver's process tree."""
TERM_GRACE_S = 2.0
"""Seconds between SIGTERM and SIGKILL of what a dead driver left behind."""
DONE = b"done"
"""Written by a driver that shut its Ray down itself: nothing to reap."""


def start_reaper() -> subprocess.Popen | None:
    """Start the reaper of this process's descendants; None where /proc is missing."""
    if not os.path.isdir("/proc/self/task"):
        return None
    return subprocess.Popen([sys.executable, "-S", os.path.abspath(__file__), str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True,
                            start_new_session=True)  # a terminal's Ctrl-C is the driver's to handle


def stand_down(reaper: subprocess.Popen) -> None:
    """Tell the reaper the driver shut Ray down itself, and let it exit."""
    try:
        reaper.stdin.write(DONE)
        reaper.stdin.close()
        reaper.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    return children


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of `pid`, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def descendants(root: int) -> dict[int, int]:
    """{pid: start time} of every descendant of `root` (not `root` itself)."""
    children, found, stack = _children_map(), {}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            stat = _stat(child)
            if stat is not None and child not in found:
                found[child] = stat[1]
                stack.append(child)
    return found


def running(pid: int, start_ticks: int | None = None) -> bool:
    """True while `pid` runs (a zombie counts as gone), as the process that started at
    `start_ticks` when given (a reused pid has another start time)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
        return fields[0] != b"Z" and (start_ticks is None or int(fields[19]) == start_ticks)
    except (OSError, ValueError, IndexError):
        return False


def _alive(recorded: dict[int, int]) -> list[int]:
    """The recorded pids still running as the same process."""
    return [pid for pid, started in recorded.items() if running(pid, started)]


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def reap(driver: int, pipe: Any) -> None:
    """The reaper's loop (see the module docstring)."""
    recorded: dict[int, int] = {}
    received = b""
    while True:
        recorded.update(descendants(driver))
        recorded.pop(os.getpid(), None)
        ready, _, _ = select.select([pipe], [], [], SNAPSHOT_INTERVAL_S)
        if ready:
            chunk = os.read(pipe.fileno(), 64)
            received += chunk
            if not chunk:
                break
    if received.startswith(DONE):
        return
    _signal_all(_alive(recorded), signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_S
    while _alive(recorded) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_all(_alive(recorded), signal.SIGKILL)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reap(int(sys.argv[1]), sys.stdin.buffer)
