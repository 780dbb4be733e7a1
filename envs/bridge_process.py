"""Starting and ending a bridge simulator's process tree (envs/subprocess_env.py, bridge_transport.py).

On Linux every program runs under envs/sim_supervisor.py (a relay and a supervisor, standard
library only) started in a session (process group) of its own: it kills and reaps whatever
the program forks, the helpers that left the group with setsid included, when the program
exits, when the host stops it, and when the host process dies without a word (SIGKILL, a Ray
actor killed). The host still SIGKILLs the whole group after asking, so a supervisor that
cannot answer (stopped, or killed) does not keep the group alive. Elsewhere the program is started
directly, in a group of its own.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys

SUPERVISOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sim_supervisor.py")
STOP_WAIT_S = 2.0
"""How long the supervisor gets to kill and reap the program's descendants before the host
SIGKILLs the group."""
KILL_WAIT_S = 5.0
"""How long a SIGKILLed group is waited for before it is left to init (uninterruptible sleep)."""
SUPERVISED = sys.platform == "linux"


def check_runnable(program: str) -> None:
    """Raise what Popen would for a program that cannot run (FileNotFoundError, PermissionError,
    NotADirectoryError): under the supervisor, the exec happens one process further away."""
    path = program if os.sep in program else shutil.which(program)
    if path is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        os.stat(path)  # FileNotFoundError, NotADirectoryError where the path itself is wrong
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)


def start(command: list[str], **popen_kwargs) -> subprocess.Popen:
    """Start `command` in a session of its own, under the supervisor where there is one."""
    if SUPERVISED:
        check_runnable(command[0])
        command = [sys.executable, "-I", "-S", SUPERVISOR, str(os.getpid()), *command]
    return subprocess.Popen(command, start_new_session=True, **popen_kwargs)


def _first_child(pid: int) -> int | None:
    """The oldest living child of `pid`, or None."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as stream:
            return int(stream.read().split()[0])
    except IndexError:
        return None
    except OSError:
        pass
    first = None  # kernels without CONFIG_PROC_CHILDREN: scan /proc/*/stat
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and (first is None or int(fields[19]) < first[1]):
                first = (int(name), int(fields[19]))  # field 22: start time
    return first[0] if first else None


def program_pid(proc: subprocess.Popen) -> int:
    """The simulator's own pid: below the relay (`proc`) and the supervisor, or `proc` itself
    when unsupervised (or once the program has ended)."""
    if not SUPERVISED:
        return proc.pid
    supervisor = _first_child(proc.pid)
    program = _first_child(supervisor) if supervisor is not None else None
    return program if program is not None else proc.pid


def stop(proc: subprocess.Popen) -> None:
    """End the program and everything it started, and reap it, bounded: the supervisor is asked
    first (SIGTERM: it kills and reaps the descendants, setsid'ed ones included), then the
    whole process group gets SIGKILL."""
    if SUPERVISED and proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=STOP_WAIT_S)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=KILL_WAIT_S)  # reaped: no zombie
    except subprocess.TimeoutExpired:
        pass  # in uninterruptible sleep: init reaps it when this process ends
