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

Truncation, autoreset, episode statistics and action checks are BatchedEnv's, on the host.
Each reply must arrive within `step_timeout_s`. A program that exits, hangs past the
timeout, answers without the b"RLFM" tag or with non-finite numbers is killed (SIGKILL, then
reaped), restarted, and its copies are reset and counted in `infos["env_errors"]`; the farm
goes on. Programs get SIGKILL when the process that started them dies (Linux) and see end of
stdin, so none outlive a killed runner; `close()` ends and reaps them all.
"""
from __future__ import annotations

import ctypes
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

from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.checks import check_int, check_number

MAGIC = b"RLFM"
VERSION = 1


class SimulatorFault(RuntimeError):
    """The external program crashed, hung or sent malformed data."""


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


def exit_words(code: int | None) -> str:
    """A simulator's end in words: its exit status, or the signal that killed it."""
    if code is None:
        return "the simulator closed its output but is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the simulator was killed by {name}"
    return f"the simulator exited with status {code}"


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: end of stdin still tells the program to exit


class SimProcess:
    """One running program holding `copies` copies."""

    def __init__(self, command: list[str], copies: int, timeout_s: float):
        self.copies, self.timeout_s = copies, timeout_s
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        hello = self.read(4 + 20, timeout_s=max(timeout_s, 30.0))  # start-up may compile, import...
        if hello[:4] != MAGIC:
            raise SimulatorFault(f"handshake: expected b'RLFM', got {hello[:4]!r}")
        self.version, self.obs_dim, self.action_kind, self.action_size, self.reset_draws = \
            struct.unpack("<5I", hello[4:])
        self.send(b"N", copies, b"")

    def send(self, op: bytes, count: int, payload: bytes) -> None:
        try:
            self.proc.stdin.write(op + struct.pack("<I", count) + payload)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as err:
            raise SimulatorFault(exit_words(self.proc.poll())) from err

    def read(self, size: int, timeout_s: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        chunks, got = [], 0
        while got < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise SimulatorFault(f"no reply within {timeout_s or self.timeout_s:g} s")
            chunk = os.read(self.fd, size - got)
            if not chunk:
                raise SimulatorFault(exit_words(self.proc.wait()))
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def reply(self, size: int) -> bytes:
        data = self.read(4 + size)
        if data[:4] != MAGIC:
            raise SimulatorFault(f"malformed reply: expected b'RLFM', got {data[:4]!r}")
        return data[4:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()  # reaped: no zombie
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class SubprocessEnv(BatchedEnv):
    """N copies of an external simulator (see the module docstring for the protocol)."""

    def __init__(self, num_envs: int = 1, *, command: list[str], obs_dim: int, num_actions: int = 0,
                 action_dim: int = 0, action_low: float | list[float] = -1.0, action_high: float | list[float] = 1.0,
                 copies_per_process: int = 256, step_timeout_s: float = 5.0, max_episode_steps: int = 500,
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
        per = check_int("copies_per_process", copies_per_process, 1)
        self.slices = [slice(start, min(start + per, self.num_envs)) for start in range(0, self.num_envs, per)]
        self.procs: list[SimProcess | None] = [None] * len(self.slices)
        self.obs = np.zeros((self.num_envs, obs_dim), np.float32)
        self.restarts = 0
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
            proc = SimProcess(self.command, sl.stop - sl.start, self.timeout_s)
        except FileNotFoundError as err:
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
        proc, count = self.procs[k], len(copies)
        try:
            proc.send(b"R", count, (copies - self.slices[k].start).astype("<u4").tobytes()
                      + np.ascontiguousarray(unit, "<f8").tobytes())
            obs = np.frombuffer(proc.reply(4 * count * self.obs.shape[1]), "<f4").reshape(count, -1)
            if not np.isfinite(obs).all():
                raise SimulatorFault("non-finite observations after a reset")
            self.obs[copies] = obs
        except SimulatorFault:
            if not retry:
                raise
            self._restart(k)
            self._reset_in(k, copies, unit, retry=False)

    def _observe(self, copies: np.ndarray) -> np.ndarray:
        return self.obs[copies]

    def _physics(self, actions: np.ndarray):
        n, dim = self.num_envs, self.obs.shape[1]
        wire = actions.astype("<i4" if actions.dtype.kind in "iu" else "<f4", copy=False)
        rewards, terminated = np.zeros(n, np.float32), np.zeros(n, bool)
        failed, reasons = [], []
        for k, sl in enumerate(self.slices):  # every program steps at once ...
            try:
                self.procs[k].send(b"S", sl.stop - sl.start, np.ascontiguousarray(wire[sl]).tobytes())
            except SimulatorFault as err:
                failed.append(k)
                reasons.append(f"simulator process {k}: {err}")
        for k, sl in enumerate(self.slices):  # ... then the replies are read in turn
            if k in failed:
                continue
            c = sl.stop - sl.start
            try:
                data = self.procs[k].reply(4 * c * dim + 4 * c + c)
                obs = np.frombuffer(data, "<f4", c * dim).reshape(c, dim)
                rew = np.frombuffer(data, "<f4", c, offset=4 * c * dim)
                if not (np.isfinite(obs).all() and np.isfinite(rew).all()):
                    raise SimulatorFault("non-finite observations or rewards")
                self.obs[sl], rewards[sl] = obs, rew
                terminated[sl] = np.frombuffer(data, np.uint8, c, offset=4 * c * dim + 4 * c) != 0
            except SimulatorFault as err:
                failed.append(k)
                reasons.append(f"simulator process {k}: {err}")
        if failed:
            for k in failed:
                self._restart(k)
            self._bad_reason = "; ".join(reasons)
            self._bad_copies = np.concatenate([np.arange(n)[self.slices[k]] for k in failed])
        return self.obs.copy(), rewards, terminated

    def _restart(self, k: int) -> None:
        self.procs[k].kill()
        self.restarts += 1
        self.procs[k] = self._start(k)

    def pids(self) -> list[int]:
        """The programs' process ids (for tests and monitoring)."""
        return [proc.proc.pid for proc in self.procs if proc is not None]

    def close_extras(self, **kwargs: Any) -> None:
        for proc in getattr(self, "procs", []):
            if proc is not None:
                try:
                    proc.send(b"Q", 0, b"")
                except SimulatorFault:
                    pass
                proc.kill()
        self.procs = []
