"""docs/envs.md works as written: its files are extracted and run (bash blocks are not)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

DOC = Path(__file__).resolve().parents[2] / "docs" / "envs.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def doc_files() -> dict[str, str]:
    """Blocks whose first line is `# file: NAME`, by NAME; plus the toml block."""
    files = {}
    for lang, body in BLOCK.findall(DOC.read_text()):
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            files[first[len("# file: "):].strip()] = body
        elif lang == "toml":
            files["pyproject.toml"] = body
    return files


@pytest.fixture(scope="module")
def doc_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("doc")
    for name, body in doc_files().items():
        (folder / name).write_text(body)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


def test_the_doc_has_every_path():
    assert {"reach_env.py", "reach.yaml", "reach_imports.yaml", "reach_register.py",
            "external_sim.yaml", "pyproject.toml"} <= set(doc_files())
    assert len(doc_files()["reach_env.py"].splitlines()) <= 45


def test_the_batched_env_passes_the_checks(doc_dir):
    from rlfarm.envs import conventions

    assert [r for r in conventions.check("reach_env:Reach", 4) if not r.ok] == []


@pytest.mark.parametrize("name", ["reach.yaml", "reach_imports.yaml", "external_sim.yaml"])
def test_the_configs_pass_the_config_check(name, doc_dir):
    from rlfarm.experiments.config import load_config

    cfg = load_config(str(doc_dir / name), [])
    assert cfg.env.id in doc_files()[name]


def test_the_entry_point_names_the_doc_env(doc_dir):
    from rlfarm.envs import BatchedEnv
    from rlfarm.envs.registry import _load_attr

    points = tomllib.loads(doc_files()["pyproject.toml"])["project"]["entry-points"]["rlfarm.envs"]
    assert issubclass(_load_attr(points["reach/Reach-v1"], "reach/Reach-v1"), BatchedEnv)


@pytest.mark.slow
def test_the_reach_config_trains(doc_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(doc_dir), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "train", "reach.yaml",
                           "--set", "farm.mode=serial", "--set", "stop.env_steps=4096",
                           "--set", f"log.dir={doc_dir / 'runs'}"],
                          cwd=doc_dir, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ran its budget of 4.1k env steps" in proc.stderr
