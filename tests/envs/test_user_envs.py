"""A user's own env, farmed without editing rlfarm: named as "package.module:Class", through
`env.imports`, and through an installed `rlfarm.envs` entry point, in serial and Ray mode.

The package is written to tmp_path, outside the repo. Its env's `__init__` leaves a marker
file named after its PID and runner index, which proves that the user's batched class (not
an adapter around it) ran in every runner process.
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

ENV_MODULE = textwrap.dedent('''
    """Say the sign: the observation is +1 or -1, action 1 answers +1 and action 0 answers -1."""
    import os

    import gymnasium
    import numpy as np
    from gymnasium import spaces

    from rlfarm.envs import BatchedEnv


    class SignEnv(BatchedEnv):
        def __init__(self, num_envs=1, *, max_episode_steps=8, fail_in_runner=-1, **kwargs):
            super().__init__(num_envs, spaces.Box(-1.0, 1.0, (1,), np.float32), spaces.Discrete(2),
                             max_episode_steps=max_episode_steps, **kwargs)
            if self.runner_index == fail_in_runner:
                raise RuntimeError(f"sensor calibration missing on runner {self.runner_index}")
            self.sign = np.ones(self.num_envs, np.float32)
            markers = os.environ.get("SIGN_ENV_MARKERS")
            if markers:
                open(os.path.join(markers, f"{os.getpid()}-{self.runner_index}"), "w").close()

        def _reset_copies(self, copies, unit):
            self.sign[copies] = np.where(unit[:, 0] < 0.5, -1.0, 1.0)

        def _observe(self, copies):
            return self.sign[copies, None].copy()

        def _physics(self, actions):
            rewards = (actions == (self.sign > 0)).astype(np.float32)
            np.negative(self.sign, out=self.sign)
            return self._observe(self._all_copies), rewards, np.zeros(self.num_envs, bool)


    gymnasium.register(id="signpkg/Sign-v0", vector_entry_point="signpkg.envs:SignEnv")
''')

PYPROJECT = textwrap.dedent('''
    [build-system]
    requires = ["setuptools>=68"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "signpkg"
    version = "0.1"

    [project.entry-points."rlfarm.envs"]
    "signpkg/Sign-v1" = "signpkg.envs:SignEnv"

    [tool.setuptools]
    packages = ["signpkg"]
''')

REPO_PARENT = str(Path(__file__).resolve().parents[2].parent)


def write_package(root: Path) -> Path:
    """The throwaway package `signpkg` under `root` (a source tree with a pyproject)."""
    (root / "signpkg").mkdir(parents=True)
    (root / "signpkg" / "__init__.py").write_text("")
    (root / "signpkg" / "envs.py").write_text(ENV_MODULE)
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def sign_config(tmp_path: Path, env: dict, mode: str, runners: int = 2) -> Path:
    config = {
        "name": "sign", "seed": 0,
        "env": {"envs_per_runner": 16, **env},
        "model": {"hidden_sizes": [16]},
        "algo": {"name": "ppo", "lr": 3e-3, "epochs": 4, "minibatches": 2, "device": "cpu"},
        "farm": {"mode": mode, "num_runners": runners, "fragment_length": 16},
        "stop": {"env_steps": 60_000, "target_return": 7.5},
        "log": {"dir": str(tmp_path / "runs"), "report_interval_s": 0.2, "progress": "lines",
                "return_window": 50},
    }
    path = tmp_path / f"sign-{mode}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train(config: Path, pythonpath: list[str], markers: Path, timeout: int = 240):
    """`rlfarm train CONFIG` in a fresh process whose PYTHONPATH holds the user's package."""
    markers.mkdir(exist_ok=True)
    env = {**os.environ, "SIGN_ENV_MARKERS": str(markers),
           "PYTHONPATH": os.pathsep.join(pythonpath + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    run_dir = config.with_suffix("")
    popen = subprocess.Popen([sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config),
                              "--run-dir", str(run_dir)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=str(config.parent))
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    finally:
        popen.kill()
    return subprocess.CompletedProcess(popen.pid, popen.returncode, stdout, stderr), run_dir


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> dict[str, str]:
    """The package as a source folder, and installed with pip into its own --target folder
    (an install like any other, whose entry points importlib.metadata finds on sys.path;
    removing the folder uninstalls it without touching the shared site-packages)."""
    root = write_package(tmp_path_factory.mktemp("user") / "src")
    target = root.parent / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(root)], check=True, capture_output=True)
    return {"source": str(root), "installed": str(target)}


NAMINGS = {
    "path": ({"id": "signpkg.envs:SignEnv"}, "source"),
    "imports": ({"id": "signpkg/Sign-v0", "imports": ["signpkg.envs"]}, "source"),
    "entry_point": ({"id": "signpkg/Sign-v1"}, "installed"),
}


def _check_trained(proc, run_dir: Path, markers: Path, runners: int) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_reason"] == "target_return" and summary["solved"], summary
    made_by = {int(name.split("-")[1]) for name in os.listdir(markers)}
    assert made_by == set(range(runners)), os.listdir(markers)  # every runner made the user's class

@pytest.mark.slow
@pytest.mark.parametrize("naming", sorted(NAMINGS))
def test_user_env_trains_in_serial_mode(naming, package, tmp_path):
    env, where = NAMINGS[naming]
    proc, run_dir = train(sign_config(tmp_path, env, "serial"), [package[where]], tmp_path / "markers")
    _check_trained(proc, run_dir, tmp_path / "markers", runners=2)
    assert len({name.split("-")[0] for name in os.listdir(tmp_path / "markers")}) == 1  # one process


@pytest.mark.slow
@pytest.mark.parametrize("naming", sorted(NAMINGS))
def test_user_env_trains_in_ray_mode_and_runs_in_every_runner(naming, package, tmp_path):
    env, where = NAMINGS[naming]
    proc, run_dir = train(sign_config(tmp_path, env, "ray"), [package[where]], tmp_path / "markers")
    _check_trained(proc, run_dir, tmp_path / "markers", runners=2)
    driver = proc.args  # the CLI process's PID
    in_runners = {name for name in os.listdir(tmp_path / "markers") if name.split("-")[0] != str(driver)}
    assert sorted(int(name.split("-")[1]) for name in in_runners) == [0, 1]  # runner 0 and 1 ...
    assert len({name.split("-")[0] for name in in_runners}) == 2  # ... each in its own process


@pytest.mark.slow
def test_a_runner_that_cannot_make_its_env_is_reported_as_such(package, tmp_path):
    """Runner 1's env raises in the user's __init__ (the driver's probe, as runner 0, passes)."""
    config = sign_config(tmp_path, {"id": "signpkg.envs:SignEnv", "kwargs": {"fail_in_runner": 1}}, "ray")
    proc, run_dir = train(config, [package["source"]], tmp_path / "markers")
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = [line for line in proc.stderr.splitlines() if "could not make its env" in line]
    assert report and "runner 1" in report[0], proc.stderr[-3000:]
    assert "RuntimeError: sensor calibration missing on runner 1" in report[0]
    assert "signpkg/envs.py:" in proc.stderr and "in __init__" in proc.stderr
    assert "LearnerDiedError" not in proc.stderr and "Traceback" not in proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_reason"] == "runner_start_failed"
    assert "sensor calibration missing" in summary["error"]
    assert (run_dir / "config.yaml").exists()


def test_a_missing_env_module_is_a_config_error_in_one_line(tmp_path):
    config = sign_config(tmp_path, {"id": "signpkg/Sign-v0", "imports": ["nosuchpkg.envs"]}, "serial")
    proc, run_dir = train(config, [], tmp_path / "markers", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "rlfarm train: error: env.imports: no module named 'nosuchpkg' (is its package installed, "
        "or its folder on PYTHONPATH, on every node?)"]
    assert not run_dir.exists()


@pytest.mark.parametrize("mode", ["serial", "ray"])
def test_a_user_env_failing_in_init_ends_the_same_from_the_cli_and_the_api(package, tmp_path, mode):
    """The preflight builds the env once, before the capacity check: the CLI (capacity check
    on, no --force) and rlfarm.train end alike, with the user's short report, no traceback,
    runner_start_failed in summary.json and exit code 1 (the API: TrainingError). A sweep
    trial trains through rlfarm.train, so it ends the same way."""
    env = {"id": "signpkg.envs:SignEnv", "kwargs": {"fail_in_runner": 0}}  # the driver's copy fails
    proc, run_dir = train(sign_config(tmp_path, env, mode), [package["source"]], tmp_path / "markers", timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "RuntimeError: sensor calibration missing on runner 0" in proc.stderr
    cli_summary = json.loads((run_dir / "summary.json").read_text())
    assert cli_summary["exit_reason"] == "runner_start_failed"

    api_script = textwrap.dedent(f"""
        import json, sys, rlfarm
        try:
            rlfarm.train(rlfarm.load_config({str(sign_config(tmp_path, env, mode))!r}), run_dir=sys.argv[1])
        except rlfarm.TrainingError as err:
            print(json.dumps(err.run.summary))
    """)
    api_dir = tmp_path / "api-run"
    env_vars = {**os.environ, "SIGN_ENV_MARKERS": str(tmp_path / "markers"),
                "PYTHONPATH": os.pathsep.join([package["source"], *filter(None, [os.environ.get("PYTHONPATH")])])}
    api = subprocess.run([sys.executable, "-c", api_script, str(api_dir)], capture_output=True, text=True,
                         env=env_vars, cwd=str(tmp_path), timeout=120)
    api_summary = json.loads(api.stdout.strip().splitlines()[-1])
    assert api_summary["exit_reason"] == cli_summary["exit_reason"]
    assert api_summary["error"] == cli_summary["error"]
