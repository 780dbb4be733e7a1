"""`rlfarm train` in a pseudo-terminal 80 columns wide: the progress line never wraps, every
redraw replaces the last one completely, and the run ends on a clean final line."""
from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import yaml

from .conftest import SMALL_CARTPOLE, merge

COLUMNS = 80


def run_in_pty(argv: list[str], cwd: Path, columns: int = COLUMNS, timeout: float = 180) -> bytes:
    """Run argv with a pty of `columns` x 24 as its stdin, stdout and stderr; all it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                            close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=timeout)
    finally:
        proc.kill()
        os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks)


def screen(output: str, columns: int) -> tuple[list[str], list[str]]:
    """Replay `output` on a terminal `columns` wide without auto-wrap; (rows, overflows): a row
    per line, and the rows that were written past the last column (they would have wrapped)."""
    rows, row, col, overflows = [], [], 0, []
    for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|.", output, flags=re.S):
        if token == "\r":
            col = 0
        elif token == "\n":
            rows.append("".join(row).rstrip())
            row, col = [], 0
        elif token == "\x1b[K":
            del row[col:]
        elif token.startswith("\x1b"):
            continue
        else:
            if col >= columns:
                overflows.append("".join(row))
            row[col:col + 1] = [token] if col < len(row) else [" "] * (col - len(row)) + [token]
            col += 1
    if row:
        rows.append("".join(row).rstrip())
    return rows, overflows


@pytest.mark.slow
def test_train_in_an_80_column_terminal_fits_and_ends_cleanly(tmp_path):
    config = merge(SMALL_CARTPOLE, {"log": {"dir": "runs", "progress": "auto", "report_interval_s": 0.2},
                                    "stop": {"env_steps": 40_000}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    output = run_in_pty([sys.executable, "-m", "rlfarm.experiments.cli", "train", "config.yaml"],
                        tmp_path).decode()
    rows, overflows = screen(output, COLUMNS)
    assert not overflows, f"written past column {COLUMNS}: {overflows}"
    assert output.count("\r") >= 3, "the progress line was never redrawn in place"
    progress = [row for row in rows if " steps " in row and "return" in row]
    assert len(progress) == 1, rows  # one line, redrawn: nothing left behind on other rows
    final = progress[0]
    # every redraw erased the previous one: the row is exactly the final line, no tail of another
    # (past the budget the count shows alone: never "40.2k/40.0k")
    assert re.fullmatch(r"(\[#{20}\]  )?(40\.0k/40\.0k|40\.\dk) steps  return [\d.]+  [\d.]+k steps/s  "
                        r"0:\d\d  done", final), final
    closing = " ".join(rows[rows.index(final) + 1:])
    assert "ran its budget of 40.0k env steps" in closing
    assert "tensorboard --logdir runs/small-cartpole-" in closing and "rlfarm eval runs/" in closing
    assert all(len(row) <= COLUMNS for row in rows if "runs/" not in row), rows
