"""rlfarm's envs through gymnasium's own API: `gym.make_vec(id, n)` finds rlfarm ids, the bridge
and installed entry-point ids, and gymnasium's vector wrappers (RecordEpisodeStatistics, as
CleanRL uses it, and others) work on what it returns (envs/interop.py)."""
from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs import registry
from rlfarm.envs.interop import GymnasiumView

IDS = ["rlfarm/CartPole-v1", "rlfarm/Pendulum-v1", "rlfarm/HeatControl-v0", "rlfarm/KuramotoSivashinsky-v0"]


def episodes(env, steps: int, seed: int) -> tuple[list[float], list[int]]:
    """Returns and lengths of the episodes that ended in `steps` steps of fixed random actions."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    returns, lengths = [], []
    for action in actions:
        *_, infos = env.step(action)
        if "_episode" in infos and infos["_episode"].any():
            mask = infos["_episode"]
            returns += infos["episode"]["r"][mask].astype(float).tolist()
            lengths += infos["episode"]["l"][mask].astype(int).tolist()
    env.close()
    return returns, lengths


@pytest.mark.parametrize("env_id", IDS)
def test_record_episode_statistics_agrees_with_rlfarms_own_episodes(env_id):
    vec = gym.make_vec(env_id, num_envs=4)
    assert isinstance(vec, GymnasiumView) and isinstance(vec.unwrapped, envs.BatchedEnv)
    steps = 260 if "CartPole" in env_id or "Pendulum" in env_id else 40
    kwargs = {} if "CartPole" in env_id or "Pendulum" in env_id else {"max_episode_steps": 10}
    wrapped = gym.wrappers.vector.RecordEpisodeStatistics(gym.make_vec(env_id, num_envs=4, **kwargs))
    theirs = episodes(wrapped, steps, seed=3)
    ours = episodes(envs.make(env_id, 4, **kwargs), steps, seed=3)
    assert len(ours[0]) > 0
    assert theirs[1] == ours[1]
    np.testing.assert_allclose(theirs[0], ours[0], rtol=1e-5, atol=1e-4)  # float32 sums against float64


def test_other_vector_wrappers_work():
    env = gym.make_vec("rlfarm/Pendulum-v1", num_envs=4)
    env = gym.wrappers.vector.ClipAction(env)
    env = gym.wrappers.vector.NormalizeObservation(env)
    env = gym.wrappers.vector.NormalizeReward(env)
    env = gym.wrappers.vector.RecordEpisodeStatistics(env)
    obs, _ = env.reset(seed=0)
    for _ in range(200):
        obs, rewards, terminated, truncated, infos = env.step(np.full((4, 1), 5.0, np.float32))  # clipped to 2
    assert obs.shape == (4, 3) and np.isfinite(obs).all() and np.isfinite(rewards).all()
    assert infos["_episode"].all() and (infos["episode"]["l"] == 200).all()  # Pendulum's time limit


def test_envs_make_keeps_rlfarms_episode_keys_and_to_gymnasium_drops_them():
    env = envs.make("rlfarm/CartPole-v1", 2, seed=0)
    env.reset()
    assert "episode" in env.step(np.zeros(2, np.int64))[-1]
    view = envs.to_gymnasium(env)
    assert "episode" not in view.step(np.zeros(2, np.int64))[-1] and envs.to_gymnasium(view) is view


def test_the_bridge_is_made_by_make_vec():
    vec = gym.make_vec("rlfarm/Subprocess-v0", num_envs=4, command=["{python}", "-m", "rlfarm.envs.sims.cartpole_sim"],
                       obs_dim=4, num_actions=2)
    wrapped = gym.wrappers.vector.RecordEpisodeStatistics(vec)
    returns, lengths = episodes(wrapped, 120, seed=0)
    assert len(lengths) > 0 and returns == [float(n) for n in lengths]  # CartPole: reward 1 per step


ENV_MODULE = textwrap.dedent('''
    import numpy as np
    from gymnasium import spaces

    from rlfarm.envs import BatchedEnv


    class Coin(BatchedEnv):
        """Guess a coin that shows its face: reward 1 for the right guess; 5-step episodes."""

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


@pytest.fixture
def installed_entry_point(tmp_path, monkeypatch):
    """A package `coinpkg` declaring `coin/Coin-v0` in the `rlfarm.envs` entry-point group, as an
    installed distribution on sys.path (its dist-info), removed again after the test."""
    (tmp_path / "coinpkg").mkdir()
    (tmp_path / "coinpkg" / "__init__.py").write_text("")
    (tmp_path / "coinpkg" / "envs.py").write_text(ENV_MODULE)
    info = tmp_path / "coinpkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: coinpkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rlfarm.envs]\ncoin/Coin-v0 = coinpkg.envs:Coin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield "coin/Coin-v0"
    gym.registry.pop("coin/Coin-v0", None)
    registry.entry_point_ids(refresh=True)
    sys.modules.pop("coinpkg.envs", None)
    sys.modules.pop("coinpkg", None)


def test_an_entry_point_id_is_made_by_make_vec(installed_entry_point):
    registry.register_all()  # what `import rlfarm.envs` does in a process where the package is installed
    assert installed_entry_point in importlib.metadata.entry_points(group="rlfarm.envs").names
    vec = gym.wrappers.vector.RecordEpisodeStatistics(gym.make_vec(installed_entry_point, num_envs=3))
    returns, lengths = episodes(vec, 12, seed=0)
    assert lengths == [5] * 6 and all(0 <= r <= 5 for r in returns)
