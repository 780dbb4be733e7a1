"""An env that could not be made, described for the user in a few lines.

A runner that fails to build its env (an import error, a bad keyword, an exception in the
user's `__init__`) reports an `EnvStartError` instead of dying: the driver prints its
`report()` (type, message, the user's file:line) and ends the run as `runner_start_failed`.
The error pickles as plain strings, so it crosses process boundaries (Ray) intact.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import traceback

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RLFARM_DIRS = tuple(os.path.join(_ROOT, name) + os.sep for name in ("envs", "agents", "cluster", "experiments"))
_LIBRARY_DIRS = tuple({os.path.abspath(sysconfig.get_paths()[name]) for name in ("stdlib", "platstdlib")})
_LIBRARY_PACKAGES = ("gymnasium", "ray", "numpy", "importlib", "torch")


class EnvStartError(RuntimeError):
    """The env could not be made in `who` (a runner, or the driver's probe)."""

    def __init__(self, who: str, kind: str, message: str, where: str, config_error: bool):
        super().__init__(who, kind, message, where, config_error)
        self.who, self.kind, self.message, self.where = who, kind, message, where
        self.config_error = config_error
        """True where the env's config is wrong (exit 2), False where the env's code failed (exit 1)."""

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def report(self) -> str:
        """At most 5 lines: who failed, the exception's type and message, the user's file:line."""
        lines = self.message.strip().splitlines() or [""]
        if len(lines) > 2:
            lines = lines[:2] + ["..."]
        text = [f"{self.who} could not make its env: {self.kind}: {lines[0]}", *lines[1:]]
        if self.where:
            text.append(f"  at {self.where}")
        return "\n".join(text[:5])


def describe(err: BaseException, who: str) -> EnvStartError:
    """`err`, raised while making an env in `who`, as an EnvStartError."""
    if isinstance(err, EnvStartError):
        return err
    from rlfarm.envs.registry import EnvSpecError

    config_error = isinstance(err, (EnvSpecError, ImportError, SyntaxError))
    return EnvStartError(who, type(err).__name__, str(err), _user_frame(err), config_error)


def _user_frame(err: BaseException) -> str:
    """file:line of the innermost frame in the user's code: outside rlfarm's package and the
    stdlib, and preferably outside site-packages (unless the user's package is installed)."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    frames = [f for f in reversed(traceback.extract_tb(err.__traceback__)) if _maybe_user(f.filename)]
    installed = [f for f in frames if "site-packages" in f.filename or "dist-packages" in f.filename]
    frame = next((f for f in frames if f not in installed), installed[0] if installed else None)
    return f"{frame.filename}:{frame.lineno} in {frame.name}" if frame else ""


def _maybe_user(filename: str) -> bool:
    path = os.path.abspath(filename)
    if filename.startswith("<") or path.startswith(_RLFARM_DIRS):
        return False
    if path.startswith(_LIBRARY_DIRS) and "-packages" not in path:
        return False
    return not any(f"{os.sep}{name}{os.sep}" in path for name in _LIBRARY_PACKAGES)


def print_report(err: EnvStartError, prefix: str = "rlfarm train") -> None:
    for line in err.report().splitlines():
        print(f"{prefix}: {line}", file=sys.stderr)
