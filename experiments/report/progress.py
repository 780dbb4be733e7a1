"""Progress display of `rlfarm train`: a one-line bar on a terminal, plain lines otherwise.

Written by hand with carriage returns (no tqdm dependency). The line always fits the terminal
(`shutil.get_terminal_size()`, re-read at every redraw): when it is too narrow, fields are
dropped by priority instead of letting the line wrap, because a wrapped line cannot be
redrawn in place and leaves pieces behind.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from typing import TextIO

BAR_WIDTH = 20
LINES_INTERVAL_S = 5.0
"""Plain-line mode prints at most this often, so batch logs stay readable."""
ERASE_TO_END = "\x1b[K"

FINAL_WORDS = {"target_return": "target reached", "env_steps": "done", "wall_s": "wall time",
               "interrupted": "interrupted", "sigterm": "stopped (SIGTERM)", "callback": "stopped",
               "crashed": "crashed"}
"""What the final line says in place of the ETA, by exit_reason."""


def format_count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Status:
    """What one progress line shows. Counters that are zero are not shown."""

    env_steps: int
    steps_per_s: float
    elapsed_s: float
    return_mean: float | None = None
    eta_s: float | None = None
    policy_lag: float = 0.0
    restarts: int = 0
    exit_reason: str | None = None
    """Set on the final line: the run has ended, for this reason."""


class Progress:
    """`update()` at every report; `close()` ends the bar's line."""

    def __init__(self, mode: str = "auto", total_env_steps: int = 0, stream: TextIO | None = None,
                 target_return: float | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.total_env_steps = int(total_env_steps or 0)
        self.target_return = target_return
        self._last_line = float("-inf")
        self._open = False

    def fields(self, status: Status) -> list[tuple[int, str]]:
        """(priority, text) in display order; a lower priority number is dropped last."""
        final = status.exit_reason is not None
        steps = format_count(status.env_steps)
        if self.total_env_steps and status.env_steps <= self.total_env_steps:
            steps += f"/{format_count(self.total_env_steps)}"
        fields = [(0, f"{steps} steps")]
        if self.mode == "bar" and self.total_env_steps:
            done = 1.0 if final else min(1.0, status.env_steps / self.total_env_steps)
            filled = int(done * BAR_WIDTH)
            fields.insert(0, (7, f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}]"))
        ret = "--" if status.return_mean is None else f"{status.return_mean:.1f}"
        target = "" if self.target_return is None else f"/{self.target_return:g}"
        fields += [(1, f"return {ret}{target}"), (3, f"{format_count(status.steps_per_s)} steps/s"),
                   (2, format_duration(status.elapsed_s))]
        if status.restarts:
            fields.append((1, f"restarts {status.restarts}"))
        if status.policy_lag:
            fields.append((5, f"lag {status.policy_lag:.1f}"))
        if final:
            fields.append((0, FINAL_WORDS.get(status.exit_reason, status.exit_reason)))
        elif status.eta_s is not None:
            fields.append((4, f"ETA {format_duration(status.eta_s)}"))
        return fields

    def line(self, status: Status, width: int) -> str:
        """The fields joined by two spaces, least important ones dropped until it fits `width`."""
        fields = self.fields(status)
        while fields:
            text = "  ".join(text for _, text in fields)
            if len(text) <= width:
                return text
            worst = max(range(len(fields)), key=lambda i: (fields[i][0], i))
            fields.pop(worst)
        return ""

    def update(self, status: Status) -> None:
        if self.mode == "none":
            return
        # One column short of the width: writing the last column makes some terminals wrap.
        width = max(shutil.get_terminal_size().columns - 1, 10)
        text = self.line(status, width)[:width]
        if self.mode == "bar":
            self.stream.write("\r" + text + ERASE_TO_END)
            self._open = True
            self.stream.flush()
            return
        now = time.monotonic()
        if status.exit_reason is not None or now - self._last_line >= LINES_INTERVAL_S:
            self._last_line = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.mode == "bar" and self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
