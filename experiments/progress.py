"""Progress display of `rlfarm train`: a one-line bar on a terminal, plain lines otherwise.

Written by hand with carriage returns (no tqdm dependency): steps, steps/s, return, ETA.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24
LINES_INTERVAL_S = 5.0
"""Plain-line mode prints at most this often, so batch logs stay readable."""


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


class Progress:
    """`update()` at every report; `close()` ends the bar's line."""

    def __init__(self, mode: str = "auto", total_env_steps: int = 0, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.total_env_steps = int(total_env_steps or 0)
        self._last_line = float("-inf")
        self._width = 0

    def update(self, env_steps: int, steps_per_s: float, return_mean: float | None,
               eta_s: float | None, final: bool = False) -> None:
        if self.mode == "none":
            return
        ret = "  --  " if return_mean is None else f"{return_mean:8.2f}"
        total = f"/{format_count(self.total_env_steps)}" if self.total_env_steps else ""
        text = (f"{format_count(env_steps)}{total} steps  {format_count(steps_per_s)} steps/s  "
                f"return {ret}  ETA {format_duration(0.0 if final else eta_s)}")
        if self.mode == "bar":
            if self.total_env_steps:
                done = min(1.0, env_steps / self.total_env_steps)
                filled = int(done * BAR_WIDTH)
                text = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {text}"
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.stream.flush()
            return
        now = time.monotonic()
        if final or now - self._last_line >= LINES_INTERVAL_S:
            self._last_line = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.mode == "bar" and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
