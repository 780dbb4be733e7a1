"""docs/api.md is run as written: its Python blocks in order, in one fresh interpreter whose
working directory holds the project's experiments/ folder (as a user's checkout does), and its
YAML block as a sweep section."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "api.md").read_text()
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC, flags=re.S | re.M)
YAML_BLOCKS = re.findall(r"^```yaml\n(.*?)^```", DOC, flags=re.S | re.M)


def test_the_doc_has_its_examples():
    assert len(PYTHON_BLOCKS) >= 3 and len(YAML_BLOCKS) >= 1
    assert all(re.search(r"^```(python|yaml)$", line) or not line.startswith("```") or line == "```"
               for line in DOC.splitlines()), "a code block of another language would go untested"


def test_the_yaml_block_is_the_shipped_example_sweep_section():
    from rlfarm.experiments.launch.sweep import parse_settings

    documented = yaml.safe_load(YAML_BLOCKS[0])["sweep"]
    shipped = yaml.safe_load((REPO / "experiments/examples/sweep_cartpole.yaml").read_text())["sweep"]
    parse_settings(documented)
    assert {k: v for k, v in documented.items() if k in shipped} == shipped


@pytest.mark.slow
def test_the_python_blocks_run_in_order(tmp_path):
    (tmp_path / "experiments").symlink_to(REPO / "experiments")
    script = "\n".join(PYTHON_BLOCKS)
    env = {**os.environ, "RLFARM_TORCH_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs").is_dir()
