"""No simulator descendant outlives its runner (issue 26, item 2): helpers a program forks,
a daemon that left its process group with setsid, and the program behind a launcher shell
all end with the env, with a runner process that is SIGKILLed, and never with a host thread.

rude_sim.py's `setsid` mode starts a helper in the program's group and an orphaned daemon in
a session of its own; every process appends its pid to a file, and none may be alive a
bounded time after the end. (The same through a Ray runner killed with ray.kill:
tests/cluster/test_bridge_reaper.py.)"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs import subprocess_env

from .conftest import alive

RUDE_SIM = str(Path(__file__).with_name("rude_sim.py"))
CARTPOLE = {"obs_dim": 4, "num_actions": 2}
GRACE_S = 10.0
"""Bound on the end of every descendant (process starts and a /proc scan on a loaded 2-core machine)."""
PER_PROGRAM = 3
"""Processes each `setsid` program notes: itself, its helper, its daemon."""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the supervisor is Linux-only (prctl, /proc)")




def noted(pidfile: Path, count: int) -> list[int]:
    """The pids in `pidfile`, once it holds `count` (the daemons note theirs in their own time)."""
    deadline = time.monotonic() + GRACE_S
    while True:
        pids = [int(line) for line in pidfile.read_text().split()] if pidfile.exists() else []
        if len(pids) >= count or time.monotonic() > deadline:
            assert len(pids) >= count, pids
            return pids
        time.sleep(0.02)


def assert_all_end(pids: list[int]) -> float:
    """Every pid ends within GRACE_S; returns how long it took."""
    begun = time.monotonic()
    while any(alive(pid) for pid in pids) and time.monotonic() - begun < GRACE_S:
        time.sleep(0.02)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:  # the test's own mess: do not leave it to the next test
        with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
            os.kill(pid, signal.SIGKILL)
    assert not left, f"left behind: {left}"
    return time.monotonic() - begun


def setsid_command(pidfile: Path, launcher: bool = False) -> list[str]:
    command = [sys.executable, RUDE_SIM, "setsid", str(pidfile)]
    if launcher:  # a shell that does not exec: the program is its child
        return ["sh", "-c", " ".join(command) + "; echo the simulator ended >&2"]
    return command


def server_command(pidfile: Path) -> list[str]:
    """A socket server behind a launcher shell that first starts a helper in the group and a
    daemon in a session of its own (setsid), noting the three pids."""
    script = (f"echo $$ >> {pidfile}; sleep 3600 & echo $! >> {pidfile}; setsid sleep 3600 & echo $! >> {pidfile}; "
              "exec {python} -m rlfarm.envs.sims.cartpole_sim --listen {address}")
    return ["sh", "-c", script]


def make_env(pidfile: Path, transport: str):
    command = setsid_command(pidfile) if transport == "pipes" else server_command(pidfile)
    return envs.make("rlfarm/Subprocess-v0", 4, command=command, copies_per_process=2, transport=transport,
                     **CARTPOLE)


@pytest.mark.parametrize("transport", ["pipes", "unix", "tcp"])
def test_close_reaches_a_daemon_that_left_the_group(tmp_path, transport):
    pidfile = tmp_path / "pids"
    env = make_env(pidfile, transport)
    env.reset(seed=0)
    env.step(np.zeros(4, np.int64))
    pids = noted(pidfile, 2 * PER_PROGRAM)
    assert all(alive(pid) for pid in pids)
    begun = time.monotonic()
    env.close()
    assert time.monotonic() - begun < GRACE_S
    assert_all_end(pids)


def test_a_program_that_exits_takes_its_daemon_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess_env, "EXIT_WAIT_S", 5.0)  # its supervisor's report, on a loaded machine
    pidfile = tmp_path / "pids"
    env = envs.make("rlfarm/Subprocess-v0", 2, command=setsid_command(pidfile), **CARTPOLE)
    try:
        env.reset(seed=0)
        pids = noted(pidfile, PER_PROGRAM)
        program = env.pids()[0]
        assert program == pids[0]  # pids() names the program, not its supervisor
        os.kill(program, signal.SIGKILL)
        _, _, _, truncated, infos = env.step(np.zeros(2, np.int64))
        assert truncated.all() and infos["env_error_message"].endswith("the simulator was killed by SIGKILL")
        assert_all_end(pids)  # the first incarnation's helper and daemon; its replacement runs
        assert env.restarts == 1 and alive(env.pids()[0])
    finally:
        env.close()
    assert_all_end(noted(pidfile, 2 * PER_PROGRAM))


RUNNER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from rlfarm import envs
    env = envs.make("rlfarm/Subprocess-v0", 4, command=sys.argv[2:], copies_per_process=2,
                    obs_dim=4, num_actions=2, transport=sys.argv[1])
    env.reset(seed=0)
    env.step(np.zeros(4, np.int64))
    print("ready", flush=True)
    time.sleep(3600)
""")


@pytest.mark.parametrize("transport, launcher", [("pipes", False), ("pipes", True), ("unix", True), ("tcp", True)],
                         ids=["pipes", "pipes_launcher_shell", "unix_launcher_shell", "tcp_launcher_shell"])
def test_a_sigkilled_runner_leaves_no_descendant(tmp_path, transport, launcher):
    pidfile = tmp_path / "pids"
    command = setsid_command(pidfile, launcher) if transport == "pipes" else server_command(pidfile)
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, transport, *command], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline().strip() == "ready"
        pids = noted(pidfile, 2 * PER_PROGRAM)
        assert all(alive(pid) for pid in pids)
        os.kill(runner.pid, signal.SIGKILL)  # it cannot close its env
        runner.wait(timeout=GRACE_S)
        assert_all_end(pids)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_an_env_built_in_a_thread_outlives_the_thread(tmp_path):
    """The death signal fires when the THREAD that started a process ends: the supervisor
    tells that from the runner's death, so an env built in a worker thread goes on."""
    pidfile = tmp_path / "pids"
    built = []
    thread = threading.Thread(target=lambda: built.append(
        envs.make("rlfarm/Subprocess-v0", 2, command=setsid_command(pidfile), **CARTPOLE)))
    thread.start()
    thread.join()
    env = built[0]
    try:
        pids = noted(pidfile, PER_PROGRAM)
        time.sleep(0.5)  # a wrongly taken death signal would have ended them by now
        assert all(alive(pid) for pid in pids)
        env.reset(seed=0)
        _, _, _, _, infos = env.step(np.zeros(2, np.int64))
        assert "env_errors" not in infos and env.restarts == 0
    finally:
        env.close()
    assert_all_end(pids)
