"""Run directories: their names, their atomic creation (one run, one directory), and the
checkpoints inside them (listing, and falling back to the newest one that loads)."""
from __future__ import annotations

import glob
import itertools
import os
import re
import sys
import time
from typing import Callable, Sequence, TypeVar

from rlfarm.experiments.config import ExperimentConfig
from rlfarm.experiments.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = ".writer.lock"
"""In a run dir: locked (flock) by the one process that writes the run; holds its PID and host."""
_CHECKPOINT_RE = re.compile(r"ckpt-(\d+)\.pt$")
Loaded = TypeVar("Loaded")


def new_run_dir(cfg: ExperimentConfig) -> str:
    """The proposed name <log.dir>/<name>-<YYYYmmdd-HHMMSS>; nothing is created here.

    `claim_run_dir(..., unique=True)` creates it when the run starts, as -2, -3, ... when
    another run took the name first (runs started in one second).
    """
    return os.path.join(cfg.log.dir, f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def claim_run_dir(path: str, unique: bool) -> str:
    """Create the run dir `path` and its checkpoints/ folder atomically; return the dir claimed.

    Two processes can never claim one dir: the claim is an exclusive `os.mkdir` (of the dir,
    or of its checkpoints/ when the dir already exists), which exactly one of them wins.
    unique: on a taken name try `path-2`, `path-3`, ...; otherwise (a --run-dir the user
    chose) a taken or non-empty dir is a ConfigError.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    for count in itertools.count(1):
        candidate = path if count == 1 else f"{path}-{count}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            if unique:
                continue
        try:
            os.mkdir(os.path.join(candidate, CHECKPOINT_DIR))
        except FileExistsError:
            if unique:
                continue
            refuse_used_run_dir(candidate, force=True)
        if not unique and os.listdir(candidate) != [CHECKPOINT_DIR]:
            os.rmdir(os.path.join(candidate, CHECKPOINT_DIR))
            refuse_used_run_dir(candidate, force=True)
        return candidate
    raise AssertionError("unreachable")


class RunDirLock:
    """The exclusive writer's lock on a run dir: an OS lock (flock) on `LOCK_FILE`, which the
    kernel drops when the process ends, however it ends. The file holds "PID HOST" of the
    holder, for the refusal's message. See docs/robustness.md for shared filesystems."""

    def __init__(self, run_dir: str, option: str = "--resume") -> None:
        import fcntl
        import socket

        path = os.path.join(run_dir, LOCK_FILE)
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 200, 0).decode("utf-8", "replace").split()
            self.release()
            pid, host = (holder + ["?", "?"])[:2]
            raise ConfigError(f"{option}: {run_dir} is being written by another rlfarm process (PID {pid} "
                              f"on host {host}); one run dir has one writer") from None
        except OSError as err:  # a filesystem without locks (Lustre without -o flock, ...)
            print(f"rlfarm: warning: cannot lock {path} ({err.strerror}); a second writer of this run dir "
                  "would not be refused", file=sys.stderr)
            return
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops the lock
            self.fd = None


def refuse_used_run_dir(run_dir: str, force: bool = False) -> None:
    """ConfigError for a --run-dir that exists and is not empty (always, with force)."""
    if force or (os.path.isdir(run_dir) and os.listdir(run_dir)):
        raise ConfigError(f"--run-dir: {run_dir} exists and is not empty (or another run took it); "
                          f"use --resume {run_dir} to continue it")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"--run-dir: {run_dir} exists and is not a folder")


def list_checkpoints(run_dir: str) -> list[str]:
    """A run's checkpoints, oldest first (ordered by env steps in the file name)."""
    paths = glob.glob(os.path.join(glob.escape(run_dir), CHECKPOINT_DIR, "ckpt-*.pt"))
    return sorted((p for p in paths if _CHECKPOINT_RE.search(p)),
                  key=lambda p: int(_CHECKPOINT_RE.search(p).group(1)))


def load_newest_valid(candidates: Sequence[str], load: Callable[[str], Loaded],
                      option: str) -> tuple[str, Loaded]:
    """(path, load(path)) for the first of `candidates` (newest first) that loads.

    Each unusable one is named once on stderr with its reason, with the one used; when none
    loads, a ConfigError for `option` names the newest one's reason.
    """
    from rlfarm import agents

    failures: list[str] = []
    for path in candidates:
        try:
            loaded = load(path)
        except agents.CheckpointError as err:
            failures.append(str(getattr(err, "cause", err)))  # a learner actor's: Ray wraps it
            continue
        for failure in failures:
            print(f"rlfarm: skipping {failure}", file=sys.stderr)
        if failures:
            print(f"rlfarm: using {path}, the newest checkpoint that loads", file=sys.stderr)
        return path, loaded
    if not failures:
        raise ConfigError(f"{option}: no checkpoint to load")
    older = f" (nor do the {len(failures) - 1} older ones load)" if len(failures) > 1 else ""
    raise ConfigError(f"{option}: {failures[0]}{older}")


def checkpoint_env_steps(path: str) -> int:
    """The env steps in a checkpoint's file name (ckpt-<env steps>.pt)."""
    return int(_CHECKPOINT_RE.search(path).group(1))


def find_last_checkpoint(run_dir: str) -> str | None:
    if not os.path.isdir(run_dir):
        raise ConfigError(f"{run_dir}: no such run dir")
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None
