"""Shared pieces for the agents tests: a same-step-autoreset CartPole and a tiny training loop.

The loop stands in for the cluster layer's Runner (which the agents layer must not import):
it fills Fragments exactly as docs/interfaces.md lays them out.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from rlfarm import agents

# Small tensors on a shared 2-core machine: one torch thread avoids thread contention.
torch.set_num_threads(1)


class SameStepCartPole:
    """gymnasium's numpy CartPoleVectorEnv, reset in the same step an episode ends
    (the Fragment layout's convention); returns the final obs of the ended episodes."""

    def __init__(self, num_envs: int, seed: int):
        self.env = CartPoleVectorEnv(num_envs=num_envs)
        self.obs, _ = self.env.reset(seed=seed)
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space

    def step(self, actions):
        env = self.env
        obs, rewards, terminated, truncated, _ = env.step(actions)
        final_obs = obs
        done = terminated | truncated
        if done.any():
            env.state[:, done] = env.np_random.uniform(low=env.low, high=env.high, size=(4, int(done.sum())))
            env.steps[done] = 0
            env.prev_done[done] = False
            obs = env.state.T.astype(np.float32)
        return obs, rewards.astype(np.float32), terminated, truncated, final_obs


def collect(env, policy, horizon: int, episode_state: dict) -> agents.Fragment:
    """One Fragment of `horizon` steps, as a runner would write it."""
    num_envs = env.obs.shape[0]
    fragment = agents.Fragment.allocate(horizon, num_envs, env.obs.shape[1:], policy_version=policy.version)
    returns, lengths = episode_state["ret"], episode_state["len"]
    ended_returns, ended_lengths = [], []
    obs = env.obs
    for t in range(horizon):
        fragment.obs[t] = obs
        actions, logp, values = policy.act(obs)
        obs, rewards, terminated, truncated, final_obs = env.step(policy.env_actions(actions))
        fragment.actions[t], fragment.logp[t], fragment.values[t] = actions, logp, values
        fragment.rewards[t], fragment.terminated[t], fragment.truncated[t] = rewards, terminated, truncated
        if truncated.any():
            fragment.final_values[t, truncated] = policy.value(final_obs[truncated])
        returns += rewards
        lengths += 1
        done = terminated | truncated
        if done.any():
            ended_returns.append(returns[done].copy())
            ended_lengths.append(lengths[done].copy())
            returns[done] = 0
            lengths[done] = 0
    fragment.obs[horizon] = obs
    env.obs = obs
    if ended_returns:
        fragment.episode_returns = np.concatenate(ended_returns).astype(np.float32)
        fragment.episode_lengths = np.concatenate(ended_lengths).astype(np.int32)
    return fragment


def train_cartpole(policy_cfg, algo_cfg, *, num_envs: int, horizon: int, total_env_steps: int,
                   seed: int, target: float = 475.0, lag: int = 0) -> dict:
    """Train until the mean of the last 100 episode returns reaches `target`.

    lag > 0 makes the behaviour policy act with the weights from `lag` versions ago.
    """
    torch.set_num_threads(1)
    env = SameStepCartPole(num_envs, seed)
    learner = agents.make_learner(env.single_observation_space, env.single_action_space, policy_cfg,
                                  algo_cfg, total_env_steps=total_env_steps, device="cpu", seed=seed)
    policy = agents.ActingPolicy(env.single_observation_space, env.single_action_space, policy_cfg, seed=seed + 1)
    published = [learner.get_weights()]
    policy.set_weights(published[0])
    episode_state = {"ret": np.zeros(num_envs, np.float32), "len": np.zeros(num_envs, np.int64)}
    all_returns: list[float] = []
    steps, start, metrics = 0, time.perf_counter(), {}
    while steps < total_env_steps:
        fragment = collect(env, policy, horizon, episode_state)
        all_returns.extend(fragment.episode_returns.tolist())
        steps += fragment.num_steps
        metrics = learner.update([fragment])
        published = (published + [learner.get_weights()])[-(lag + 1):]
        policy.set_weights(published[0])
        if len(all_returns) >= 100 and np.mean(all_returns[-100:]) >= target:
            break
    recent = float(np.mean(all_returns[-100:])) if all_returns else 0.0
    return {"solved": recent >= target, "env_steps": steps, "return_mean_100": recent,
            "seconds": time.perf_counter() - start, "metrics": metrics, "learner": learner}


@pytest.fixture
def cartpole_trainer():
    return train_cartpole
