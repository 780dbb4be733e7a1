"""One import namespace: rlfarm installs as `rlfarm.envs`, `rlfarm.agents`, `rlfarm.cluster`
and `rlfarm.experiments`, and a user's own `envs/` or `experiments/` folder shadows nothing.

Each check runs in a fresh interpreter whose working directory is a throwaway "user project"
holding folders named like ours, the way a user's RL project often looks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
GENERIC_NAMES = ("envs", "agents", "cluster", "experiments")

PROBE = textwrap.dedent("""
    import importlib.util, json, sys
    import rlfarm.envs, rlfarm.agents, rlfarm.cluster, rlfarm.experiments.cli
    env = rlfarm.envs.make("rlfarm/CartPole-v1", num_envs=4, seed=0)
    obs, _ = env.reset()
    sys.path.remove("")  # what is importable from site-packages alone, not from the user's folder
    print(json.dumps({
        "rlfarm": rlfarm.envs.__file__,
        "obs_shape": list(obs.shape),
        "generic": {name: importlib.util.find_spec(name) is not None for name in %r},
    }))
""" % (GENERIC_NAMES,))


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A user's project whose `envs` and `experiments` packages would break ours if imported."""
    project = tmp_path / "user-project"
    for name in ("envs", "experiments"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    return project


def probe(python: str, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([python, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_installed_package_is_not_shadowed_by_user_folders(user_project):
    found = probe(sys.executable, user_project)
    assert found["obs_shape"] == [4, 4]
    assert not found["rlfarm"].startswith(str(user_project)), found
    assert not any(found["generic"].values()), f"generic top-level modules importable: {found['generic']}"


def reuse_running_packages(python: str) -> None:
    """Let the venv of `python` import torch, ray and gymnasium from the running interpreter's
    site-packages, named explicitly in a .pth file (a `--system-site-packages` venv would get
    the base Python's packages instead, which a fresh venv's base does not have). The venv's
    own site-packages stays first on sys.path, and a bare path line in a .pth does not run the
    .pth files found there, so the running venv's editable rlfarm is not imported."""
    running = [p for p in sys.path if p and os.path.basename(p) in ("site-packages", "dist-packages")]
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    Path(own, "zz_running_interpreter.pth").write_text("".join(f"{p}\n" for p in running))


@pytest.mark.slow
def test_regular_install_from_a_wheel_is_not_shadowed(user_project, tmp_path):
    """A non-editable install: the wheel holds `rlfarm/...` and nothing under a generic name."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, capture_output=True, timeout=300)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    reuse_running_packages(python)
    wheel = next(wheels.glob("rlfarm-*.whl"))
    # --ignore-installed: the running venv (on the path through the .pth above) holds an editable
    # rlfarm of the same version, which pip would otherwise take as already installed.
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--ignore-installed", "-q",
                    str(wheel)],
                   check=True, capture_output=True, timeout=300)
    found = probe(python, user_project)
    assert found["rlfarm"].startswith(str(venv)), found
    assert not any(found["generic"].values()), found
    import zipfile

    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert top_level == {"rlfarm", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}


@pytest.mark.slow
def test_ray_workers_in_a_user_folder_import_rlfarm(user_project):
    """Ray puts the driver's working directory on its workers' path: a runner actor started
    from the user's project must still find rlfarm's envs, not the user's."""
    config = user_project / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "seed": 0,
        "env": {"id": "rlfarm/CartPole-v1", "envs_per_runner": 8},
        "model": {"hidden_sizes": [8]},
        "algo": {"name": "ppo", "epochs": 1, "minibatches": 1, "device": "cpu"},
        "farm": {"mode": "ray", "num_runners": 1, "fragment_length": 16},
        "stop": {"env_steps": 512},
        "log": {"dir": str(user_project / "runs"), "progress": "none", "checkpoint_interval_s": 0},
    }))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["RLFARM_TORCH_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config)],
                          cwd=user_project, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(next((user_project / "runs").glob("tiny-*/summary.json")).read_text())
    assert summary["env_steps"] >= 512


def test_pyproject_lists_every_package_folder():
    """pyproject.toml names the packages by hand (the root is the package, so setuptools'
    finder cannot be pointed at it): every folder with an __init__.py must be listed, and
    nothing else, or a new subfolder would silently miss the wheel."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"rlfarm"}
    for layer in GENERIC_NAMES:
        for init in (REPO / layer).rglob("__init__.py"):
            found.add(".".join(("rlfarm", *init.parent.relative_to(REPO).parts)))
    assert listed == found
