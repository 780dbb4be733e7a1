"""rlfarm's envs in other trainers, against the real libraries: Stable-Baselines3's PPO through
`rlfarm.envs.to_sb3`, and a CleanRL-style PPO loop on `gym.make_vec` with gymnasium's
RecordEpisodeStatistics (docs/envs.md, "In other trainers").

SB3 is the `compare` extra (`pip install -e ".[compare]"`); without it its tests skip.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rlfarm import envs

ENV_ID = "rlfarm/CartPole-v1"
SEEDS = [0, 1, 2]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # processes side by side on a small machine: no oversubscription
    yield
    torch.set_num_threads(threads)


# ---- Stable-Baselines3 ---------------------------------------------------------------------

def sb3_ppo(seed: int, steps: int) -> list[float]:
    """rl-zoo's CartPole-v1 hyperparameters (8 envs); the returns of the episodes SB3 logged."""
    sb3 = pytest.importorskip("stable_baselines3", reason="Stable-Baselines3 is the `compare` extra")
    vec = envs.to_sb3(ENV_ID, 8, seed=seed)
    model = sb3.PPO("MlpPolicy", vec, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                    ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=steps)
    vec.close()
    return [info["r"] for info in model.ep_info_buffer]


def test_sb3_takes_the_adapter_as_its_vec_env():
    pytest.importorskip("stable_baselines3", reason="Stable-Baselines3 is the `compare` extra")
    returns = sb3_ppo(seed=0, steps=1024)
    assert len(returns) > 0 and all(r >= 1 for r in returns)  # VecMonitor's episode records, from rlfarm's


def test_sb3_terminal_observation_is_the_last_one_and_time_limits_are_marked():
    pytest.importorskip("stable_baselines3", reason="Stable-Baselines3 is the `compare` extra")
    vec = envs.to_sb3(ENV_ID, 4, seed=0, max_episode_steps=5)
    obs = vec.reset()
    for _ in range(5):
        obs, rewards, dones, infos = vec.step(np.zeros(4, np.int64))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert all(info["episode"]["l"] == 5 and info["episode"]["r"] == 5.0 for info in infos)
    final = np.stack([info["terminal_observation"] for info in infos])
    assert not np.array_equal(final, obs)  # obs is already the reset copy's
    with pytest.raises(ValueError, match="autoreset_mode"):
        envs.to_sb3(envs.make(ENV_ID, 2))  # next-step autoreset: SB3 cannot use it


@pytest.mark.slow
def test_sb3_ppo_learns_cartpole_through_the_adapter():
    """At least 2 of seeds 0-2 average 150 or more over their last episodes within 50k env steps
    (rl-zoo reports about 500 after 100k)."""
    finals = [float(np.mean(sb3_ppo(seed, 50_000)[-20:])) for seed in SEEDS]
    assert sum(r >= 150 for r in finals) >= 2, finals


# ---- a CleanRL-style loop ------------------------------------------------------------------

def cleanrl_ppo(seed: int, steps: int, num_envs: int = 8, horizon: int = 64) -> list[float]:
    """CleanRL's ppo.py (https://docs.cleanrl.dev/rl-algorithms/ppo/), condensed: gymnasium's
    make_vec and RecordEpisodeStatistics, same-step autoreset, GAE, clipped PPO. Returns the
    returns of the episodes that the wrapper recorded."""
    torch.manual_seed(seed)
    env = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.make_vec(ENV_ID, num_envs=num_envs, autoreset_mode="same_step"))
    obs_dim, num_actions = env.single_observation_space.shape[0], env.single_action_space.n

    def mlp(out: int, gain: float) -> nn.Sequential:
        layers = [nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out)]
        for layer in layers[::2]:
            nn.init.orthogonal_(layer.weight, np.sqrt(2) if layer is not layers[-1] else gain)
            nn.init.zeros_(layer.bias)
        return nn.Sequential(*layers)

    actor, critic = mlp(num_actions, 0.01), mlp(1, 1.0)
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=2.5e-3, eps=1e-5)
    obs_buf = torch.zeros(horizon, num_envs, obs_dim)
    act_buf, logp_buf, rew_buf, done_buf, val_buf = (torch.zeros(horizon, num_envs) for _ in range(5))
    next_obs = torch.as_tensor(env.reset(seed=seed)[0])
    next_done = torch.zeros(num_envs)
    returns: list[float] = []
    for _ in range(steps // (num_envs * horizon)):
        for t in range(horizon):
            obs_buf[t], done_buf[t] = next_obs, next_done
            with torch.no_grad():
                dist = torch.distributions.Categorical(logits=actor(next_obs))
                action = dist.sample()
                logp_buf[t], val_buf[t], act_buf[t] = dist.log_prob(action), critic(next_obs).squeeze(-1), action
            obs, reward, terminated, truncated, infos = env.step(action.numpy())
            rew_buf[t] = torch.as_tensor(reward)
            next_obs, next_done = torch.as_tensor(obs), torch.as_tensor(terminated | truncated, dtype=torch.float32)
            if "episode" in infos:
                returns += infos["episode"]["r"][infos["_episode"]].tolist()
        with torch.no_grad():  # GAE (Schulman et al. 2016), gamma 0.99, lambda 0.95
            advantages, last = torch.zeros_like(rew_buf), torch.zeros(num_envs)
            next_value = critic(next_obs).squeeze(-1)
            for t in reversed(range(horizon)):
                not_done = 1.0 - (next_done if t == horizon - 1 else done_buf[t + 1])
                value_after = next_value if t == horizon - 1 else val_buf[t + 1]
                delta = rew_buf[t] + 0.99 * value_after * not_done - val_buf[t]
                advantages[t] = last = delta + 0.99 * 0.95 * not_done * last
            targets = advantages + val_buf
        b_obs, b_act, b_logp = obs_buf.reshape(-1, obs_dim), act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret = advantages.reshape(-1), targets.reshape(-1)
        for _ in range(4):
            for idx in torch.randperm(len(b_obs)).split(len(b_obs) // 2):
                dist = torch.distributions.Categorical(logits=actor(b_obs[idx]))
                ratio = (dist.log_prob(b_act[idx]) - b_logp[idx]).exp()
                adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
                value_loss = 0.5 * (critic(b_obs[idx]).squeeze(-1) - b_ret[idx]).pow(2).mean()
                loss = policy_loss + 0.5 * value_loss - 0.01 * dist.entropy().mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()], 0.5)
                optimizer.step()
    env.close()
    return returns


def test_cleanrl_loop_runs_and_records_episodes():
    returns = cleanrl_ppo(seed=0, steps=2 * 8 * 64)
    assert len(returns) > 0 and all(r >= 1 for r in returns)


@pytest.mark.slow
def test_cleanrl_style_ppo_learns_cartpole_through_make_vec():
    """At least 2 of seeds 0-2 average 150 or more over their last 20 episodes within 60k env steps."""
    finals = [float(np.mean(cleanrl_ppo(seed, 60_000)[-20:])) for seed in SEEDS]
    assert sum(r >= 150 for r in finals) >= 2, finals


# ---- the loops of docs/envs.md, as written (SB3's with a smaller budget) --------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "envs.md"


def doc_block(name: str) -> str:
    return re.search(rf"```python\n# file: {name}\n(.*?)```", DOC.read_text(), re.S).group(1)


@pytest.mark.parametrize("name", ["cleanrl_loop.py", pytest.param("sb3_ppo.py", marks=pytest.mark.slow)])
def test_the_docs_loops_run(name, tmp_path):
    if name == "sb3_ppo.py":
        pytest.importorskip("stable_baselines3", reason="Stable-Baselines3 is the `compare` extra")
    code = doc_block(name).replace("total_timesteps=50_000", "total_timesteps=512")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert ("episodic_return=" if name == "cleanrl_loop.py" else "last episodes: [") in out.stdout
