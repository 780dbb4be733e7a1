"""Errors that the CLI turns into one line and exit code 2, and the words for errors that end
a run (a full disk, a failed end-of-run write)."""
from __future__ import annotations

import errno
import traceback
from typing import Any, Callable


class ConfigError(ValueError):
    """A bad config, option or argument. The message starts with the field it names."""


def check_torch_threads() -> None:
    """$RLFARM_TORCH_THREADS, checked before any work starts (ConfigError naming it)."""
    from rlfarm.cluster.learner import torch_threads

    try:
        torch_threads()
    except ValueError as err:
        raise ConfigError(str(err)) from None


def positive_ints(option: str, text: str, example: str) -> list[int]:
    """A comma-separated list of ints >= 1 given to `option`, or a ConfigError naming it."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(f"{option}: expected comma-separated positive ints like {example}, got {text!r}")
    return values


def disk_full_path(err: BaseException) -> str | None:
    """The path whose write failed for lack of space, when that is what `err` (or what
    caused it, also across a Ray actor) says; "" when the path is unknown; else None."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return str(err.filename or "")
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None


def error_text(err: BaseException) -> str:
    """The summary's and the last line's error: "disk full writing <path>" for a full disk."""
    path = disk_full_path(err)
    if path is not None:
        return f"disk full writing {path or 'the run dir'}"
    return f"{type(err).__name__}: {err}"


def guarded(action: Callable[[], Any], exit_reason: str, error: str | None,
             prefix: str = "") -> tuple[str, str | None]:
    """Run one of the end-of-run writes; a failure makes the run "crashed" with its error
    (the first error stays), so that the summary is still written."""
    try:
        action()
    except Exception as err:  # noqa: BLE001 - the summary comes next, whatever failed here
        if disk_full_path(err) is None:
            traceback.print_exc()
        return "crashed", error or prefix + error_text(err)
    return exit_reason, error


def is_stop_condition(err: BaseException) -> bool:
    """An error that stops a run on purpose (too many env errors, non-finite updates), also
    as a Ray actor raises it (Ray's error is then an instance of the cause's class too).
    Matched by class name: importing agents.learner would import torch into a Ray driver."""
    names = {cls.__name__ for cls in type(err).__mro__}
    return bool(names & {"NonFiniteUpdates", "EnvErrorRateExceeded"}) or disk_full_path(err) is not None
