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
