"""The README is a user guide: its Python examples run as written, it stays short, and it holds
no times of day and no paths outside the repository."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, flags=re.S | re.M)


def test_the_readme_has_python_examples():
    assert len(PYTHON_BLOCKS) >= 2
    for block in PYTHON_BLOCKS:
        assert "from rlfarm" in block or "import rlfarm" in block  # the one import namespace


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_each_python_example_runs(index, tmp_path):
    """In a fresh interpreter, outside the checkout, as a user pastes it (beside the project's
    experiments/ folder, whose configs the examples name)."""
    (tmp_path / "experiments").symlink_to(README.parent / "experiments")
    proc = subprocess.run([sys.executable, "-c", PYTHON_BLOCKS[index]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={"RLFARM_TORCH_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **os.environ})
    assert proc.returncode == 0, f"README python block {index + 1} failed:\n{proc.stderr[-2000:]}"


def test_the_readme_is_a_guide_not_a_notebook():
    assert len(TEXT.splitlines()) <= 260
    times_of_day = re.findall(r"(?<![:\d])[0-2]\d:[0-5]\d(?![:\d])", TEXT)  # 02:00:00 is a limit
    assert not times_of_day, times_of_day
    assert "../" not in TEXT, "a path outside the repository"
    for link in re.findall(r"\]\(([^)#]+)", TEXT):  # relative links point at files that exist
        if not link.startswith("http"):
            assert (README.parent / link).exists(), link
