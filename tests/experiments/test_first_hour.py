"""A new user's first hour, point by point (issue: an env author's first hour): start-up time,
the folder rlfarm starts from, and an env whose __init__ raises in the driver."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import only_run_dir, read_summary

REACH = textwrap.dedent('''
    import numpy as np
    from gymnasium import spaces

    from rlfarm.envs import BatchedEnv


    class Reach(BatchedEnv):
        reset_draws = 2

        def __init__(self, num_envs=1, *, speed=0.1, max_episode_steps=50, **kwargs):
            super().__init__(num_envs, spaces.Box(-1.0, 1.0, (2,), np.float32), spaces.Discrete(3),
                             max_episode_steps=max_episode_steps, **kwargs)
            self.speed = speed
            self.state = np.zeros((self.num_envs, 2), np.float32)

        def _reset_copies(self, copies, unit):
            self.state[copies] = (unit * 2.0 - 1.0).astype(np.float32)

        def _observe(self, copies):
            return self.state[copies].copy()

        def _physics(self, actions):
            position = self.state[:, 0]
            position += (actions.astype(np.float32) - 1.0) * self.speed
            np.clip(position, -1.0, 1.0, out=position)
            distance = np.abs(position - self.state[:, 1])
            return self._observe(self._all_copies), -distance, distance < 0.05


    class Broken(Reach):
        def __init__(self, num_envs=1, **kwargs):
            raise RuntimeError("calibration file missing")
''')

# The installed `rlfarm` console script, as a user runs it: unlike `python -m` or `python -c`,
# it does not put the working folder on sys.path by itself.
CONSOLE_SCRIPT = "import sys\nfrom rlfarm.experiments.cli import main\nsys.exit(main())\n"


def rlfarm(folder: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    launcher = folder.parent / "bin" / "rlfarm"
    launcher.parent.mkdir(exist_ok=True)
    launcher.write_text(CONSOLE_SCRIPT)
    env = {**os.environ, "RLFARM_TORCH_THREADS": "1"}
    return subprocess.run([sys.executable, str(launcher), *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)


def project(tmp_path: Path, write_config, mode: str = "serial", env_id: str = "reach_env:Reach") -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "reach_env.py").write_text(REACH)
    config = write_config({"env": {"id": env_id}, "farm": {"mode": mode}, "stop": {"env_steps": 1024}})
    (folder / "reach.yaml").write_text(config.read_text())
    return folder


def test_envs_check_finds_a_module_in_the_folder_rlfarm_starts_from(tmp_path, write_config):
    folder = project(tmp_path, write_config)
    out = rlfarm(folder, "envs", "check", "reach_env:Reach", "--seconds", "0.1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reach_env:Reach follows the conventions and will farm" in out.stdout + out.stderr


@pytest.mark.slow
def test_train_finds_a_module_in_the_folder_rlfarm_starts_from(tmp_path, write_config, runs_dir):
    folder = project(tmp_path, write_config)
    out = rlfarm(folder, "train", "reach.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_summary(only_run_dir(runs_dir))["env_steps"] >= 1024


@pytest.mark.slow
def test_ray_runners_find_a_module_in_the_folder_rlfarm_starts_from(tmp_path, write_config, runs_dir):
    folder = project(tmp_path, write_config, mode="ray")
    out = rlfarm(folder, "train", "reach.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_summary(only_run_dir(runs_dir))["env_steps"] >= 1024


def test_an_env_that_raises_in_the_driver_is_reported_without_a_traceback(tmp_path, write_config, runs_dir):
    folder = project(tmp_path, write_config, env_id="reach_env:Broken")
    out = rlfarm(folder, "train", "reach.yaml")
    assert out.returncode == 1  # docs/envs.md: 1 for an exception in the user's code
    assert "Traceback" not in out.stderr
    assert "could not make its env: RuntimeError: calibration file missing" in out.stderr
    assert "reach_env.py:" in out.stderr and "in __init__" in out.stderr
    assert read_summary(only_run_dir(runs_dir))["exit_reason"] == "runner_start_failed"


def test_in_all_counts_from_the_start_of_the_call_in_the_api(write_config):
    """A script's or a sweep worker's process is older than its training: "in all" (process_s)
    must not count the time before the call."""
    import rlfarm

    cfg = rlfarm.load_config(write_config())
    time.sleep(0.5)  # this process is older than the call, by this much at least
    start = time.perf_counter()
    run = rlfarm.train(cfg)
    wall = time.perf_counter() - start
    assert run.summary["startup_s"] <= run.summary["process_s"] <= wall


COIN = textwrap.dedent('''
    import numpy as np
    from gymnasium import spaces

    from rlfarm.envs import BatchedEnv


    class Coin(BatchedEnv):
        reset_draws = 1

        def __init__(self, num_envs=1, *, max_episode_steps=5, **kwargs):
            super().__init__(num_envs, spaces.Box(0.0, 1.0, (1,), np.float32), spaces.Discrete(2),
                             max_episode_steps=max_episode_steps, **kwargs)
            self.face = np.zeros(self.num_envs, np.float32)

        def _reset_copies(self, copies, unit):
            self.face[copies] = (unit[:, 0] < 0.5).astype(np.float32)

        def _observe(self, copies):
            return self.face[copies, None].copy()

        def _physics(self, actions):
            return self._observe(self._all_copies), (actions == self.face).astype(np.float32), \\
                np.zeros(self.num_envs, bool)
''')


def test_rlfarm_envs_lists_every_id_train_accepts(tmp_path, write_config):
    """rlfarm's ids, the bridge and an installed package's entry-point id, each of which the
    config check (what `rlfarm train` runs first) accepts (the bridge needs its kwargs: skipped there)."""
    site = tmp_path / "site"
    (site / "coinpkg").mkdir(parents=True)
    (site / "coinpkg" / "__init__.py").write_text("")
    (site / "coinpkg" / "envs.py").write_text(COIN)
    (site / "coinpkg-0.1.dist-info").mkdir()
    (site / "coinpkg-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: coinpkg\nVersion: 0.1\n")
    (site / "coinpkg-0.1.dist-info" / "entry_points.txt").write_text("[rlfarm.envs]\ncoin/Coin-v0 = coinpkg.envs:Coin\n")
    folder = tmp_path / "project"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "envs"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = [line for line in out.stdout.splitlines() if line and not line.startswith((" ", "From", "Also"))]
    assert {"rlfarm/CartPole-v1", "rlfarm/Subprocess-v0", "coin/Coin-v0"} <= set(listed), out.stdout
    assert "coinpkg.envs:Coin" in out.stdout and "Discrete(2)" in out.stdout.split("coin/Coin-v0")[1]
    check = subprocess.run([sys.executable, "-c", "import sys\nfrom rlfarm.experiments.config import load_config\n"
                            "for env_id in sys.argv[2:]:\n"
                            "    load_config(sys.argv[1], ['env.id=' + env_id, 'env.kwargs={}'])\n",
                            str(write_config()), *[i for i in listed if i != "rlfarm/Subprocess-v0"]],
                           cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-2000:]
