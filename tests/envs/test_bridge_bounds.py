"""The simulator bridge is bounded everywhere (issue 26, cases 2 and 3): a program that closes
its stdout and runs on, stops reading, streams its reply, forks a helper, hides behind a
launcher shell, hangs in a restart's handshake or declares absurd sizes never holds the host
past `step_timeout_s` plus a stated grace, and leaves no process behind, grandchildren included.

Every program started here appends its pid to a file; after the env is closed (or failed to
start) none of them may be alive."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs import subprocess_env
from rlfarm.envs.subprocess_env import SimulatorFault

from .conftest import alive

RUDE_SIM = str(Path(__file__).with_name("rude_sim.py"))
CARTPOLE = {"obs_dim": 4, "num_actions": 2}
TIMEOUT_S = 1.0
GRACE_S = 5.0
"""Slack over the bound (process starts, a loaded 2-core machine)."""
LARGE = 4096
"""Copies in one program: a reset request of 4096 x (4 + 32) bytes, over a pipe's 64 KiB."""
STREAMED = 16384
"""Copies whose streamed reset reply (16384 x 16 bytes) is four pipes' worth: a host that
writes its whole request before it reads would wait on the program, which waits on it. At
4096 copies the reply (64 KiB and 4 bytes) is about one pipe, which a blocking host survived."""




def started(pidfile: Path) -> list[int]:
    return [int(line) for line in pidfile.read_text().split()] if pidfile.exists() else []


def assert_none_left(pidfile: Path, at_least: int = 1) -> None:
    pids = started(pidfile)
    assert len(pids) >= at_least, pids
    deadline = time.monotonic() + GRACE_S
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)], f"left behind: {[pid for pid in pids if alive(pid)]}"


def rude(mode: str, pidfile: Path) -> list[str]:
    return [sys.executable, RUDE_SIM, mode, str(pidfile)]


def test_a_program_that_closes_stdout_and_runs_on_is_a_fault_at_once(tmp_path):
    pidfile = tmp_path / "pids"
    env = envs.make("rlfarm/Subprocess-v0", 2, command=rude("close_stdout", pidfile),
                    step_timeout_s=30.0, **CARTPOLE)
    try:
        env.reset(seed=0)
        begun = time.monotonic()
        _, _, _, truncated, infos = env.step(np.zeros(2, np.int64))
        assert time.monotonic() - begun < GRACE_S  # not the 30 s step timeout: end of output is a fault
        assert truncated.all() and int(np.sum(infos["env_errors"])) == 2
    finally:
        env.close()
    assert_none_left(pidfile, at_least=2)  # the first program, and its replacement


def test_a_program_that_stops_reading_cannot_block_a_large_reset(tmp_path):
    pidfile = tmp_path / "pids"
    env = envs.make("rlfarm/Subprocess-v0", LARGE, command=rude("deaf", pidfile), copies_per_process=LARGE,
                    step_timeout_s=TIMEOUT_S, **CARTPOLE)
    begun = time.monotonic()
    try:
        with pytest.raises(SimulatorFault, match="no reply within"):
            env.reset(seed=0)  # times out, restarts once, times out again
        assert time.monotonic() - begun < 2 * TIMEOUT_S + GRACE_S
    finally:
        env.close()
    assert_none_left(pidfile, at_least=2)


def test_a_program_that_streams_its_reply_to_a_large_reset_does_not_deadlock(tmp_path):
    pidfile = tmp_path / "pids"
    env = envs.make("rlfarm/Subprocess-v0", STREAMED, command=rude("stream", pidfile), copies_per_process=STREAMED,
                    step_timeout_s=10.0, **CARTPOLE)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (STREAMED, 4) and np.abs(obs).max() <= 0.05 + 1e-6
        _, _, _, _, infos = env.step(np.zeros(STREAMED, np.int64))
        assert "env_errors" not in infos and env.restarts == 0
    finally:
        env.close()
    assert_none_left(pidfile)


def test_a_forked_helper_is_killed_with_its_program(tmp_path):
    pidfile = tmp_path / "pids"
    env = envs.make("rlfarm/Subprocess-v0", 4, command=rude("fork", pidfile), copies_per_process=2,
                    **CARTPOLE)
    env.reset(seed=0)
    env.step(np.zeros(4, np.int64))
    assert len(started(pidfile)) == 4  # two programs, each with a helper
    env.close()
    assert_none_left(pidfile, at_least=4)


@pytest.mark.parametrize("mode", ["stream", "stubborn"])
def test_a_launcher_shell_that_does_not_exec_leaves_no_simulator(tmp_path, mode):
    """A stubborn simulator behind the shell outlives the quit request and the end of its
    input: only a kill that reaches the shell's whole process group ends it."""
    pidfile = tmp_path / "pids"
    script = f"{sys.executable} {RUDE_SIM} {mode} {pidfile}; echo the simulator ended >&2"
    env = envs.make("rlfarm/Subprocess-v0", 4, command=["sh", "-c", script], copies_per_process=2, **CARTPOLE)
    env.reset(seed=0)
    env.step(np.zeros(4, np.int64))
    env.close()
    assert_none_left(pidfile, at_least=2)


def test_a_restart_whose_handshake_times_out_kills_the_new_program(tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    env = envs.make("rlfarm/Subprocess-v0", 2, command=rude("restart_hangs", pidfile),
                    step_timeout_s=TIMEOUT_S, **CARTPOLE)
    try:
        env.reset(seed=0)
        # only the restart's handshake gets the short bound: the first start (two interpreters,
        # the supervisor and the program) may take longer than that on a loaded machine
        monkeypatch.setattr(subprocess_env, "HANDSHAKE_TIMEOUT_S", TIMEOUT_S)
        begun = time.monotonic()
        with pytest.raises(SimulatorFault, match="no reply within"):
            env.step(np.zeros(2, np.int64))
        assert time.monotonic() - begun < TIMEOUT_S + GRACE_S
        assert len(started(pidfile)) == 2
        assert not alive(started(pidfile)[1]), "the program whose handshake failed still runs"
    finally:
        env.close()
    assert_none_left(pidfile, at_least=2)


@pytest.mark.parametrize("mode, match", [("huge_draws", "reset_draws 4294967295"),
                                         ("hang_handshake", "no reply within")])
def test_a_bad_handshake_is_refused_and_its_program_killed(tmp_path, monkeypatch, mode, match):
    if mode == "hang_handshake":  # the bound under test; a bad value is refused whatever the bound
        monkeypatch.setattr(subprocess_env, "HANDSHAKE_TIMEOUT_S", TIMEOUT_S)
    pidfile = tmp_path / "pids"
    begun = time.monotonic()
    with pytest.raises(SimulatorFault, match=match):
        envs.make("rlfarm/Subprocess-v0", 2, command=rude(mode, pidfile), step_timeout_s=TIMEOUT_S, **CARTPOLE)
    assert time.monotonic() - begun < TIMEOUT_S + GRACE_S
    assert_none_left(pidfile)


@pytest.mark.parametrize("mode", ["close_stdout", "fork"])
def test_envs_check_is_bounded_and_leaves_no_process(tmp_path, mode):
    pidfile = tmp_path / "pids"
    config = tmp_path / "sim.yaml"
    config.write_text(
        "env:\n  id: rlfarm/Subprocess-v0\n  kwargs:\n"
        f"    command: {rude(mode, pidfile)!r}\n    obs_dim: 4\n    num_actions: 2\n    step_timeout_s: 30\n")
    begun = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "envs", "check", "--config", str(config),
                           "--speed-envs", "4", "--seconds", "0.2"],
                          capture_output=True, text=True, timeout=120)
    assert time.monotonic() - begun < 60, proc.stderr[-2000:]  # not 30 s per step
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert_none_left(pidfile)
