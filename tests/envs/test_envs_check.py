"""`rlfarm envs check`: three broken envs fail, each naming the check it breaks."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from gymnasium import spaces

from rlfarm.envs import conventions
from rlfarm.envs.cartpole import CartPoleBatched

HERE = Path(__file__).resolve()


class Float64Obs(CartPoleBatched):
    """Observations in float64: a learner would get the wrong dtype."""

    def __init__(self, num_envs=1, **kwargs):
        super().__init__(num_envs, **kwargs)
        high = np.full(4, np.inf)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float64)

    def _observe(self, copies):
        return super()._observe(copies).astype(np.float64)

    def _physics(self, actions):
        obs, rewards, terminated = super()._physics(actions)
        return obs.astype(np.float64), rewards, terminated


class IgnoresSeed(CartPoleBatched):
    """Resets from numpy's global generator: seeds do not reproduce a run."""

    def _reset_copies(self, copies, unit):
        super()._reset_copies(copies, np.random.default_rng().random(unit.shape))


class AcceptsAnyAction(CartPoleBatched):
    """No action checks: a policy's bug would be silently clipped into the physics."""

    def __init__(self, num_envs=1, **kwargs):
        super().__init__(num_envs, **kwargs)
        self._check_actions = lambda actions: np.clip(np.resize(actions, self.num_envs), 0, 1).astype(np.int64)


class WideObs(CartPoleBatched):
    """Observations one column wider than the declared space (4): the width is what is wrong."""

    def _observe(self, copies):
        return np.pad(super()._observe(copies), ((0, 0), (0, 1)))

    def _physics(self, actions):
        obs, rewards, terminated = super()._physics(actions)
        return np.pad(obs, ((0, 0), (0, 1))), rewards, terminated


def test_a_wrong_observation_width_is_named_as_such_by_every_check_it_fails():
    results = {r.name: r for r in conventions.check(f"{__name__}:WideObs", num_envs=4)}
    assert results["spaces_and_dtypes"].message.endswith("obs: expected float32 (4, 4), got float32 (4, 5)")
    autoreset = results["autoreset_modes"].message
    assert "infos['final_obs']: expected float32 (4, 4)" in autoreset and "got float32 (4, 5)" in autoreset
    assert "got keys" not in autoreset  # the keys are there; their shape is what is wrong


@pytest.mark.parametrize("name, failed", [
    ("Float64Obs", "spaces_and_dtypes"),
    ("IgnoresSeed", "seeding"),
    ("AcceptsAnyAction", "bad_actions"),
])
def test_a_broken_env_fails_the_check_it_breaks(name, failed):
    results = {r.name: r for r in conventions.check(f"{__name__}:{name}", num_envs=4)}
    assert [n for n, r in results.items() if not r.ok][:1] == [failed]
    assert results[failed].message


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "envs", "check", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_cli_exit_codes_name_the_failed_check_or_the_bad_id():
    passed = run_cli("rlfarm/CartPole-v1", "--seconds", "0.1")
    assert passed.returncode == 0, passed.stderr
    assert "speed:" in passed.stdout and "will farm" in passed.stdout
    failed = run_cli("test_envs_check:IgnoresSeed")
    assert failed.returncode == 1
    assert "FAIL seeding" in failed.stdout and "failed seeding" in failed.stderr
    unknown = run_cli("rlfarm/Nope-v0")
    assert unknown.returncode == 2 and unknown.stderr.startswith("rlfarm envs: error: ID_OR_PATH: unknown env")


@pytest.mark.slow
def test_config_gives_the_env_its_keywords(tmp_path):
    """rlfarm/Subprocess-v0 needs kwargs: --config takes the config's env section."""
    config = tmp_path / "sim.yaml"
    config.write_text(yaml.safe_dump({"env": {"id": "rlfarm/Subprocess-v0", "kwargs": {
        "command": ["{python}", "-m", "rlfarm.envs.sims.cartpole_sim"], "obs_dim": 4, "num_actions": 2}}}))
    ok = run_cli("--config", str(config), "--speed-envs", "8", "--seconds", "0.2")
    assert ok.returncode == 0 and "will farm" in ok.stdout, ok.stderr[-2000:]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"env": {"id": "rlfarm/Subprocess-v0", "kwargs": {"obs_dim": 4}}}))
    refused = run_cli("--config", str(bad))
    assert refused.returncode == 2 and "env.kwargs" in refused.stderr, refused.stderr
