"""rlfarm/Subprocess-v0: copies of a simulation that runs as an external program (any language).

The env starts ceil(num_envs / copies_per_process) processes of `command`; each holds a
contiguous slice of the copies and talks to the env over its stdin/stdout with raw
little-endian arrays. The protocol (version 1), from the program's side:

    at start, write:  b"RLFM", u32 version=1, u32 obs_dim, u32 action_kind (0 discrete, 1 box),
                      u32 action_size (number of actions, or the box's dimension), u32 reset_draws
    then loop on requests, each u8 op + u32 count + payload:
      'N' count=C                       hold C copies (sent once, first)
      'R' count=k, u32 index[k], f64 unit[k, reset_draws]
                                        reset copies `index` from the uniforms `unit` (rlfarm's
                                        seeded streams); reply b"RLFM", f32 obs[k, obs_dim]
      'S' count=C, actions (i32[C], or f32[C, action_size])
                                        step every copy; reply b"RLFM", f32 obs[C, obs_dim],
                                        f32 reward[C], u8 terminated[C]
      'Q' or end of stdin               exit

With `transport: unix | tcp` the same bytes go over a socket that the program listens on
(`{address}` in `command`; envs/bridge_transport.py). Truncation, autoreset, episode
statistics and action checks are BatchedEnv's, on the host.
Each reply must arrive within `step_timeout_s` (the first words within HANDSHAKE_TIMEOUT_S).
Reads and writes never block: the host writes a request while it reads the reply, under one
deadline. A program that exits, closes its stdout, hangs past the timeout, answers without
the b"RLFM" tag or with non-finite numbers is killed (its whole process tree, then reaped,
bounded: envs/bridge_process.py), restarted, and its copies are reset and counted in
`infos["env_errors"]`; the farm goes on. A program that faults MAX_FAULT_STREAK times without
a good step between is given up (a SimulatorFault from `step`, an env error to the runner).
A handshake that fails or declares sizes past MAX_DIM / MAX_RESET_DRAWS is refused and its
program killed.

Each program runs in its own process group (its own session), under a supervisor on Linux
(envs/sim_supervisor.py, started by envs/bridge_process.py), so kill, restart and `close()`
reach the helpers it forks, the program behind a launcher shell and helpers that left the
group with setsid; and when the process that started them dies (SIGKILL included), the
supervisor kills all of them (see docs/robustness.md).
"""
from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import time
from typing import Any

import numpy as np
from gymnasium import spaces

from rlfarm.envs import bridge_process
from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.bridge_transport import TRANSPORTS, ServerChannel
from rlfarm.envs.checks import check_int, check_number

MAGIC = b"RLFM"
VERSION = 1


class SimulatorFault(RuntimeError):
    """The external program crashed, hung or sent malformed data."""


MAX_DIM = 1 << 16
"""Handshake bound on obs_dim and action_size (they must also equal the env's kwargs)."""
MAX_RESET_DRAWS = 1024
"""Handshake bound on reset_draws: the host draws num_envs x reset_draws uniforms per reset."""
HANDSHAKE_TIMEOUT_S = 30.0
"""A program's first words may take this long (it may compile, import, load data)."""
EXIT_WAIT_S = 0.5
"""A program whose output ended gets this long to exit, to report its status (its supervisor
kills and reaps its helpers first, two scans of /proc and a few wake-ups on a busy node)."""
MAX_FAULT_STREAK = 3
"""A program restarted this many times without one good step reply in between is given up."""
_CHUNK = 1 << 16


def _bounds(name: str, value: Any, dim: int) -> np.ndarray:
    """A Box bound: one number for every dimension, or a list of `dim` numbers."""
    array = np.asarray(value, dtype=object)
    if array.ndim == 0:
        array = np.full(dim, value, dtype=object)
    if array.shape != (dim,) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                                        for v in array):
        raise ValueError(f"{name}: expected a finite number or a list of action_dim={dim} finite numbers, "
                         f"got {value!r}")
    return array.astype(np.float32)


def _spaces_words(obs_dim: int, action_kind: int, action_size: int) -> str:
    """The handshake's spaces in the kwargs' own names."""
    action = f"num_actions={action_size} (a discrete action)" if action_kind == 0 else \
        f"action_dim={action_size} (a box action)"
    return f"obs_dim={obs_dim}, {action}"


def exit_words(code: int) -> str:
    """A simulator's end in words: its exit status, or the signal that killed it."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the simulator was killed by {name}"
    return f"the simulator exited with status {code}"


class SimProcess:
    """One running program holding `copies` copies, in its own process group.

    Every read and write is non-blocking and bounded by a deadline (`exchange`): the host
    writes a request while it reads the reply, so a program that streams its answer before
    it has read the whole request cannot deadlock with it, and a program that stops reading
    cannot block it. End of its output is a fault at once, whether or not it still runs.
    """

    def __init__(self, command: list[str], copies: int, timeout_s: float, transport: str = "pipes",
                 host: str = "127.0.0.1"):
        self.copies, self.timeout_s = copies, timeout_s
        self.server: ServerChannel | None = None  # unix/tcp: the program listens, we connect
        if transport == "pipes":
            self.proc = bridge_process.start(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.out_fd, self.in_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
            os.set_blocking(self.out_fd, False)
            os.set_blocking(self.in_fd, False)
        else:
            try:
                self.server = ServerChannel(command, transport, host, max(timeout_s, HANDSHAKE_TIMEOUT_S))
            except ConnectionError as err:
                raise SimulatorFault(str(err)) from None
            self.proc, self.out_fd, self.in_fd = self.server.proc, self.server.out_fd, self.server.in_fd
        try:
            hello = exchange([(self, b"", 4 + 20)], max(timeout_s, HANDSHAKE_TIMEOUT_S))[0]
            if isinstance(hello, SimulatorFault):
                raise hello
            if hello[:4] != MAGIC:
                raise SimulatorFault(f"handshake: expected b'RLFM', got {hello[:4]!r}")
            self.version, self.obs_dim, self.action_kind, self.action_size, self.reset_draws = \
                struct.unpack("<5I", hello[4:])
            if not (self.obs_dim <= MAX_DIM and self.action_size <= MAX_DIM
                    and self.reset_draws <= MAX_RESET_DRAWS):
                raise SimulatorFault(f"handshake: obs_dim {self.obs_dim}, action_size {self.action_size}, "
                                     f"reset_draws {self.reset_draws}; the bounds are {MAX_DIM}, {MAX_DIM}, "
                                     f"{MAX_RESET_DRAWS}")
            self.send(b"N", copies, b"")
        except BaseException:
            self.kill()  # a failed handshake leaves no process behind
            raise

    def send(self, op: bytes, count: int, payload: bytes) -> None:
        """A request with no reply ('N', 'Q'): written within the step timeout."""
        fault = exchange([(self, op + struct.pack("<I", count) + payload, 0)], self.timeout_s)[0]
        if isinstance(fault, SimulatorFault):
            raise fault

    def request(self, op: bytes, count: int, payload: bytes, size: int) -> bytes:
        """Write a request and read its reply (`size` bytes after the tag), both bounded."""
        data = exchange([(self, op + struct.pack("<I", count) + payload, 4 + size)], self.timeout_s)[0]
        if isinstance(data, SimulatorFault):
            raise data
        return check_tag(data)

    def exited(self, what: str) -> SimulatorFault:
        """The fault for a closed pipe; the program gets a moment to exit, to report its status."""
        try:
            code = self.proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            return SimulatorFault(f"the program {what} but still runs")
        return SimulatorFault(exit_words(code))

    def kill(self) -> None:
        """End the program, its helpers (its process group and what left it) and reap them, bounded."""
        bridge_process.stop(self.proc)
        if self.server is not None:
            self.server.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


def check_tag(data: bytes) -> bytes:
    if data[:4] != MAGIC:
        raise SimulatorFault(f"malformed reply: expected b'RLFM', got {data[:4]!r}")
    return data[4:]


def exchange(jobs: list[tuple[SimProcess, bytes, int]], timeout_s: float) -> list[bytes | SimulatorFault]:
    """For each (program, request, reply size): write the request and read that many bytes,
    all programs at once, until `timeout_s` from now. Returns each program's reply, or the
    SimulatorFault that ended its exchange (a timeout, a closed pipe); one program's fault
    does not stop the others."""
    deadline = time.monotonic() + timeout_s
    out = [memoryview(request) for _, request, _ in jobs]
    got: list[list[bytes]] = [[] for _ in jobs]
    need = [size for _, _, size in jobs]
    result: list[bytes | SimulatorFault | None] = [None] * len(jobs)
    while True:
        poller, owner = select.poll(), {}
        for j, (proc, _, _) in enumerate(jobs):
            if result[j] is not None:
                continue
            if not len(out[j]) and not need[j]:
                result[j] = b"".join(got[j])
                continue
            if len(out[j]):
                poller.register(proc.out_fd, select.POLLOUT)
                owner[proc.out_fd] = j
            if need[j]:
                poller.register(proc.in_fd, select.POLLIN)
                owner[proc.in_fd] = j
        if not owner:
            return result  # type: ignore[return-value]
        left = deadline - time.monotonic()
        events = poller.poll(max(left, 0) * 1000) if left > 0 else []
        if not events:
            for j in set(owner.values()):
                result[j] = SimulatorFault(f"no reply within {timeout_s:g} s")
            continue
        for fd, event in events:
            j = owner[fd]
            if result[j] is not None:
                continue
            proc = jobs[j][0]
            try:
                if fd == proc.in_fd:
                    chunk = os.read(fd, min(need[j], _CHUNK))
                    if not chunk:
                        result[j] = proc.exited("closed its output")
                        continue
                    got[j].append(chunk)
                    need[j] -= len(chunk)
                elif event & (select.POLLERR | select.POLLHUP):
                    result[j] = proc.exited("closed its input")
                else:
                    out[j] = out[j][os.write(fd, out[j][:_CHUNK]):]
            except BlockingIOError:
                pass
            except OSError:  # EPIPE, EBADF: it exited
                result[j] = proc.exited("closed its input")


class SubprocessEnv(BatchedEnv):
    """N copies of an external simulator (see the module docstring for the protocol)."""

    def __init__(self, num_envs: int = 1, *, command: list[str], obs_dim: int, num_actions: int = 0,
                 action_dim: int = 0, action_low: float | list[float] = -1.0, action_high: float | list[float] = 1.0,
                 copies_per_process: int = 256, step_timeout_s: float = 5.0, max_episode_steps: int = 500,
                 transport: str = "pipes", host: str = "127.0.0.1",
                 autoreset_mode: str = "next_step", runner_index: int = 0, render_mode: str | None = None):
        if not isinstance(command, (list, tuple)) or not command or not all(isinstance(c, str) for c in command):
            raise ValueError(f"command: expected a non-empty list of strings, got {command!r}")
        obs_dim = check_int("obs_dim", obs_dim, 1)
        if (num_actions > 0) == (action_dim > 0):
            raise ValueError(f"num_actions, action_dim: give exactly one (a discrete or a box action), "
                             f"got num_actions={num_actions!r}, action_dim={action_dim!r}")
        if num_actions:
            action_space = spaces.Discrete(check_int("num_actions", num_actions, 1))
        else:
            dim = check_int("action_dim", action_dim, 1)
            low, high = _bounds("action_low", action_low, dim), _bounds("action_high", action_high, dim)
            if not (low < high).all():
                raise ValueError(f"action_low, action_high: each low must be below its high, got {low.tolist()} "
                                 f"and {high.tolist()}")
            action_space = spaces.Box(low, high, (dim,), np.float32)
        obs_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        super().__init__(num_envs, obs_space, action_space, max_episode_steps=max_episode_steps,
                         autoreset_mode=autoreset_mode, runner_index=runner_index, render_mode=render_mode)
        self.command = [part.replace("{python}", sys.executable) for part in command]
        self.timeout_s = check_number("step_timeout_s", step_timeout_s, positive=True)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport: expected one of {', '.join(TRANSPORTS)}, got {transport!r}")
        if transport != "pipes" and not any("{address}" in part for part in command):
            raise ValueError(f"command: with transport {transport!r} it must contain '{{address}}' (where the "
                             "program listens; rlfarm picks it and connects)")
        self.transport, self.host = transport, host
        per = check_int("copies_per_process", copies_per_process, 1)
        self.slices = [slice(start, min(start + per, self.num_envs)) for start in range(0, self.num_envs, per)]
        self.procs: list[SimProcess | None] = [None] * len(self.slices)
        self.obs = np.zeros((self.num_envs, obs_dim), np.float32)
        self.restarts = 0
        self._streak = [0] * len(self.slices)  # faults of each program since its last good reply
        """Programs killed and restarted after a fault."""
        try:
            for k in range(len(self.slices)):
                self.procs[k] = self._start(k)
        except BaseException:
            self.close_extras()
            raise

    def _start(self, k: int) -> SimProcess:
        sl = self.slices[k]
        try:
            proc = SimProcess(self.command, sl.stop - sl.start, self.timeout_s, self.transport, self.host)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
            raise ValueError(f"command: cannot run {self.command[0]!r}: {err.strerror}") from None
        declared = (self.single_observation_space.shape[0],
                    0 if isinstance(self.single_action_space, spaces.Discrete) else 1,
                    int(getattr(self.single_action_space, "n", 0)) or self.single_action_space.shape[0])
        got = (proc.obs_dim, proc.action_kind, proc.action_size)
        if proc.version != VERSION or got != declared:
            proc.kill()
            raise ValueError(f"command: the program declares protocol {proc.version}, {_spaces_words(*got)}; "
                             f"the env's kwargs say protocol {VERSION}, {_spaces_words(*declared)}")
        self.reset_draws = proc.reset_draws
        return proc

    # ---- BatchedEnv -----------------------------------------------------------------------
    def _reset_copies(self, copies: np.ndarray, unit: np.ndarray) -> None:
        for k, sl in enumerate(self.slices):
            mine = (copies >= sl.start) & (copies < sl.stop)
            if mine.any():
                self._reset_in(k, copies[mine], unit[mine])

    def _reset_in(self, k: int, copies: np.ndarray, unit: np.ndarray, retry: bool = True) -> None:
        if self.procs[k] is None:  # given up, or its restart failed: start it now
            self.restarts += 1
            self.procs[k] = self._start(k)
        proc, count = self.procs[k], len(copies)
        try:
            payload = ((copies - self.slices[k].start).astype("<u4").tobytes()
                       + np.ascontiguousarray(unit, "<f8").tobytes())
            obs = np.frombuffer(proc.request(b"R", count, payload, 4 * count * self.obs.shape[1]),
                                "<f4").reshape(count, -1)
            if not np.isfinite(obs).all():
                raise SimulatorFault("non-finite observations after a reset")
            self.obs[copies] = obs
        except SimulatorFault as fault:
            if not retry:
                raise
            self._restart(k, fault)
            self._reset_in(k, copies, unit, retry=False)

    def _observe(self, copies: np.ndarray) -> np.ndarray:
        return self.obs[copies]

    def _physics(self, actions: np.ndarray):
        n, dim = self.num_envs, self.obs.shape[1]
        wire = actions.astype("<i4" if actions.dtype.kind in "iu" else "<f4", copy=False)
        rewards, terminated = np.zeros(n, np.float32), np.zeros(n, bool)
        for k, proc in enumerate(self.procs):
            if proc is None:  # given up, or its restart failed: start it now
                self.restarts += 1
                self.procs[k] = self._start(k)
        jobs = [(self.procs[k], b"S" + struct.pack("<I", sl.stop - sl.start) + np.ascontiguousarray(wire[sl]).tobytes(),
                 4 + 4 * (sl.stop - sl.start) * (dim + 1) + (sl.stop - sl.start))
                for k, sl in enumerate(self.slices)]
        failed = []
        for k, (sl, data) in enumerate(zip(self.slices, exchange(jobs, self.timeout_s))):  # all at once
            c = sl.stop - sl.start
            try:
                if isinstance(data, SimulatorFault):
                    raise data
                data = check_tag(data)
                obs = np.frombuffer(data, "<f4", c * dim).reshape(c, dim)
                rew = np.frombuffer(data, "<f4", c, offset=4 * c * dim)
                if not (np.isfinite(obs).all() and np.isfinite(rew).all()):
                    raise SimulatorFault("non-finite observations or rewards")
                self.obs[sl], rewards[sl] = obs, rew
                terminated[sl] = np.frombuffer(data, np.uint8, c, offset=4 * c * dim + 4 * c) != 0
                self._streak[k] = 0
            except SimulatorFault as fault:
                failed.append((k, fault))
        if failed:
            self._bad_reason = "; ".join(f"simulator process {k}: {fault}" for k, fault in failed)
            for k, fault in failed:
                self._restart(k, fault)
            self._bad_copies = np.concatenate([np.arange(n)[self.slices[k]] for k, _ in failed])
        return self.obs.copy(), rewards, terminated

    def _restart(self, k: int, fault: SimulatorFault) -> None:
        """Kill program k and start a fresh one; a program that faulted MAX_FAULT_STREAK times
        without one good reply in between is given up (SimulatorFault, an env error): each
        restart costs a start-up, and a program that always fails would never end a step."""
        if self.procs[k] is not None:
            self.procs[k].kill()
            self.procs[k] = None  # started again at the next request, if this start fails
        self._streak[k] += 1
        if self._streak[k] >= MAX_FAULT_STREAK:
            self._streak[k] = 0
            raise SimulatorFault(f"the program failed {MAX_FAULT_STREAK} times in a row; the last: {fault}")
        self.restarts += 1
        self.procs[k] = self._start(k)

    def pids(self) -> list[int]:
        """The programs' process ids (for tests and monitoring)."""
        return [bridge_process.program_pid(proc.proc) for proc in self.procs if proc is not None]

    def close_extras(self, **kwargs: Any) -> None:
        procs = [proc for proc in getattr(self, "procs", []) if proc is not None]
        self.procs = []
        if not procs:  # none started (a constructor that failed early has no timeout_s yet)
            return
        exchange([(proc, b"Q" + struct.pack("<I", 0), 0) for proc in procs], min(self.timeout_s, 1.0))
        for proc in procs:
            proc.kill()
