"""The processes between a runner and one simulator program: no descendant outlives the runner.

Run as a plain script, `python -I -S sim_supervisor.py HOST_PID COMMAND...`, so it imports only
the standard library (no rlfarm, no numpy: it starts in milliseconds). The bridge
(envs/bridge_process.py) starts it in a session of its own. It is two processes:

- the relay, the runner's child. It asks for SIGHUP when its parent thread exits
  (PR_SET_PDEATHSIG). That signal fires on the exit of the THREAD that forked it, not only of
  the process: a SIGHUP while getppid() is still HOST_PID is a host thread ending (an env
  built in a worker thread) and is ignored. It passes a stop (SIGTERM, SIGINT) down, and the
  supervisor's end back up as its own exit status. When the host is gone it just exits.
- the supervisor, the relay's child. It is a child subreaper (PR_SET_CHILD_SUBREAPER), so
  whatever the simulator forks and orphans (a helper that left the group with setsid, a
  double-forked daemon) is reparented to it rather than to PID 1, and it gets SIGHUP when the
  relay dies. It forks and execs the simulator, which inherits stdin, stdout and stderr (the
  bridge's pipes, or /dev/null with a socket transport) and gets SIGKILL if the supervisor
  dies. When the simulator exits, a stop comes or the relay dies, it SIGKILLs every
  descendant, the members of the process group and every process reparented to it, reaps
  them (bounded), and exits with the simulator's status (by the simulator's signal, without
  a core dump), so the host reads the simulator's end as if it had started it itself.

Why two: the process that cleans up must not be the runner's direct child. Ray SIGKILLs a
dying worker's direct children (RAY_kill_child_processes_on_worker_exit, on by default), and
a SIGKILLed process cleans up nothing; the relay takes that blow, the supervisor sees it die.
Both point their own stdin and stdout at /dev/null once they have forked, so the simulator
closing its stdout is an end of file for the host at once.

Linux only (prctl and /proc); elsewhere the bridge starts the program directly.
"""
# The C modules under ctypes and signal, not their Python wrappers: those import enum, struct
# and more, and every simulator start pays for what is imported here.
import _ctypes
import _signal as signal
import os
import sys
import time

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
REAP_WAIT_S = 5.0
"""How long killed descendants are waited for (one in uninterruptible sleep is left to init)."""
POLL_S = 1.0
"""The wait wakes this often to check that the host lives, in case a signal was missed."""
STOP = (signal.SIGTERM, signal.SIGINT)
WATCHED = {signal.SIGCHLD, signal.SIGHUP, *STOP}


def _processes() -> list[tuple[int, int, int, bytes]]:
    """(pid, parent pid, process group, state) of every process, from one scan of /proc/*/stat.
    One scan serves both questions below; /proc/PID/task/TID/children would need a kernel built
    with CONFIG_PROC_CHILDREN, which some (VM kernels among them) are not."""
    table = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue  # it ended while we looked
            table.append((int(name), int(fields[1]), int(fields[2]), fields[0]))
    return table


def targets(me: int) -> set[int]:
    """The live processes below `me` (its children, theirs, and so on: orphans included, since
    they are reparented to this subreaper) and the live members of its process group, but
    `me` and its parent (the relay, in the group too)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, parent, _, _ in table:
        children.setdefault(parent, []).append(pid)
    below, todo = set(), [me]
    while todo:
        kids = children.get(todo.pop(), [])
        below.update(kids)
        todo += kids
    group = os.getpgid(me)
    return {pid for pid, _, pgrp, state in table
            if (pid in below or pgrp == group) and state != b"Z" and pid not in (me, os.getppid())}


def reap() -> dict[int, int]:
    """Collect every child that has ended, without blocking: {pid: wait status}."""
    ended = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended[pid] = status


def kill_all(me: int) -> dict[int, int]:
    """SIGKILL every live descendant and member of this process group (see `targets`), round
    after round until none is left or REAP_WAIT_S passes (killed parents' children are
    reparented here and found by the next round); returns the wait statuses reaped."""
    ended: dict[int, int] = {}
    deadline = time.monotonic() + REAP_WAIT_S
    while True:
        live = targets(me)
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        ended.update(reap())
        if not live or time.monotonic() > deadline:
            return ended
        time.sleep(0.005)


def end_like(status: int | None) -> None:
    """Exit with the simulator's wait status: its exit code, or its signal (no core dump)."""
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else 1)


def let_go_of_pipes() -> None:
    """Point stdin and stdout at /dev/null: the host's pipes are the simulator's alone."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


def relay(host: int, supervisor: int) -> None:
    """The runner's child: passes a stop on to the supervisor and the supervisor's end back.
    It only exits when the host dies; the supervisor below sees it go and cleans up."""
    while True:
        info = signal.sigtimedwait(WATCHED, POLL_S)
        if info is None or info.si_signo == signal.SIGHUP:
            if os.getppid() != host:  # the host is gone (not just the thread that started us)
                os._exit(1)
        elif info.si_signo in STOP:
            os.kill(supervisor, signal.SIGTERM)
        ended = reap()
        if supervisor in ended:
            end_like(ended[supervisor])


def supervise(relay_pid: int, command: list[str]) -> None:
    """The subreaper: runs the simulator and, when it ends, the relay dies or a stop comes,
    kills and reaps everything below, then ends like the simulator."""
    me = os.getpid()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)  # the relay has one thread
    if os.getppid() != relay_pid:
        os._exit(1)
    child = os.fork()
    if child == 0:
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            if os.getppid() != me:
                os._exit(1)
            os.execvp(command[0], command)
        except OSError as err:
            sys.stderr.write(f"sim_supervisor: cannot run {command[0]!r}: {err.strerror}\n")
            os._exit(127 if isinstance(err, FileNotFoundError) else 126)
    let_go_of_pipes()
    status = None
    while True:
        info = signal.sigtimedwait(WATCHED, POLL_S)
        if info is None or info.si_signo == signal.SIGHUP:
            if os.getppid() != relay_pid:
                break
        elif info.si_signo in STOP:
            break
        ended = reap()
        if child in ended:
            status = ended[child]
            break
    ended = kill_all(me)
    end_like(ended.get(child, status))


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        sys.stderr.write("usage: sim_supervisor.py HOST_PID COMMAND...\n")
        os._exit(2)
    host, command = int(argv[0]), argv[1:]
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # delivered only through sigtimedwait
    for sig in WATCHED:  # an ignored SIGCHLD inherited from the host would auto-reap our children
        signal.signal(sig, signal.SIG_DFL)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)
    if os.getppid() != host:  # the host died before the death signal was set
        os._exit(1)
    me = os.getpid()
    if os.getpgrp() != me:  # started without a session of its own: the group kill must not reach the caller
        os.setsid()
    supervisor = os.fork()
    if supervisor == 0:
        supervise(me, command)
    let_go_of_pipes()
    relay(host, supervisor)


class _Libc:
    _handle = _ctypes.dlopen(None, 0)  # the C library this interpreter is linked with


class _CFunction(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL  # int arguments and result, as ctypes.CDLL's defaults


class libc:  # noqa: N801 (ctypes.CDLL's spelling, which it stands in for)
    prctl = _CFunction(("prctl", _Libc()))


if __name__ == "__main__":
    main(sys.argv[1:])
