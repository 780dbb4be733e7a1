"""GAE and V-trace against independent references (a naive loop, RLlib's torch V-trace)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rlfarm.agents.advantages import fold_episode_ends, gae, vtrace


def random_batch(seed: int, steps: int = 40, envs: int = 7):
    rng = np.random.default_rng(seed)
    terminated = rng.random((steps, envs)) < 0.08
    truncated = (rng.random((steps, envs)) < 0.08) & ~terminated
    data = {
        "rewards": rng.normal(size=(steps, envs)).astype(np.float32),
        "values": rng.normal(size=(steps, envs)).astype(np.float32),
        "bootstrap": rng.normal(size=envs).astype(np.float32),
        "final_values": np.where(truncated, rng.normal(size=(steps, envs)), 0).astype(np.float32),
        "terminated": terminated, "truncated": truncated,
        "behaviour_logp": -rng.random((steps, envs)).astype(np.float32) * 2,
        "target_logp": -rng.random((steps, envs)).astype(np.float32) * 2,
    }
    assert terminated.any() and truncated.any()
    return data


def naive_gae(d, gamma, lam):
    """Per env, per step, straight from the definition (Schulman et al. 2016)."""
    steps, envs = d["rewards"].shape
    advantages = np.zeros((steps, envs))
    for env in range(envs):
        running = 0.0
        for t in reversed(range(steps)):
            if d["terminated"][t, env]:
                next_value, carry = 0.0, 0.0
            elif d["truncated"][t, env]:
                next_value, carry = d["final_values"][t, env], 0.0
            else:
                next_value = d["values"][t + 1, env] if t + 1 < steps else d["bootstrap"][env]
                carry = 1.0
            delta = d["rewards"][t, env] + gamma * next_value - d["values"][t, env]
            running = delta + gamma * lam * carry * running
            advantages[t, env] = running
    return advantages


def torch_inputs(d, gamma):
    t = {k: torch.from_numpy(v) for k, v in d.items()}
    rewards, discounts = fold_episode_ends(t["rewards"], t["terminated"], t["truncated"], t["final_values"], gamma)
    return t, rewards, discounts


@pytest.mark.parametrize("seed,gamma,lam", [(0, 0.99, 0.95), (1, 0.9, 1.0), (2, 0.97, 0.0)])
def test_gae_matches_naive_loop_with_truncations_and_terminations(seed, gamma, lam):
    d = random_batch(seed)
    t, rewards, discounts = torch_inputs(d, gamma)
    advantages, returns = gae(rewards, t["values"], t["bootstrap"], discounts, lam)
    expected = naive_gae(d, gamma, lam)
    np.testing.assert_allclose(advantages.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns.numpy(), expected + d["values"], rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    # One env, one step: reward 1, V(final obs) = 10.
    ones = torch.ones(1, 1)
    for terminated, truncated, expected in ((True, False, 1.0), (False, True, 1.0 + 0.5 * 10.0)):
        rewards, discounts = fold_episode_ends(ones, torch.tensor([[terminated]]), torch.tensor([[truncated]]),
                                               torch.full((1, 1), 10.0), gamma=0.5)
        _, returns = gae(rewards, torch.zeros(1, 1), torch.full((1,), 99.0), discounts, lam=0.95)
        assert returns.item() == pytest.approx(expected)


@pytest.mark.parametrize("seed,rho_bar", [(3, 1.0), (4, 0.7), (5, 2.0)])
def test_vtrace_matches_rllib_torch_vtrace(seed, rho_bar):
    vtrace_v2 = pytest.importorskip("ray.rllib.algorithms.impala.torch.vtrace_torch_v2")
    d = random_batch(seed)
    gamma = 0.99
    t, rewards, discounts = torch_inputs(d, gamma)
    vs, advantages = vtrace(t["behaviour_logp"], t["target_logp"], rewards, t["values"], t["bootstrap"],
                            discounts, rho_bar=rho_bar, c_bar=1.0, lam=1.0)
    # RLlib's version takes terminal-zeroed discounts; rewards carry the truncation bootstrap.
    ref_vs, ref_advantages = vtrace_v2.vtrace_torch(
        target_action_log_probs=t["target_logp"], behaviour_action_log_probs=t["behaviour_logp"],
        discounts=discounts, rewards=rewards, values=t["values"], bootstrap_values=t["bootstrap"],
        clip_rho_threshold=rho_bar, clip_pg_rho_threshold=rho_bar)
    np.testing.assert_allclose(vs.numpy(), ref_vs.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(advantages.numpy(), ref_advantages.numpy(), rtol=1e-5, atol=1e-5)


def test_vtrace_on_policy_equals_lambda_one_returns():
    d = random_batch(6)
    t, rewards, discounts = torch_inputs(d, 0.95)
    vs, advantages = vtrace(t["behaviour_logp"], t["behaviour_logp"], rewards, t["values"], t["bootstrap"],
                            discounts, rho_bar=1.0, c_bar=1.0, lam=1.0)
    gae_advantages, returns = gae(rewards, t["values"], t["bootstrap"], discounts, lam=1.0)
    np.testing.assert_allclose(vs.numpy(), returns.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns.numpy(), naive_gae(d, 0.95, 1.0) + d["values"], rtol=1e-5, atol=1e-5)
    # pg advantage on-policy is the one-step TD target over vs minus V.
    next_vs = torch.cat([vs[1:], t["bootstrap"][None]])
    np.testing.assert_allclose(advantages.numpy(), (rewards + discounts * next_vs - t["values"]).numpy(), atol=1e-5)


def test_vtrace_clipping_changes_targets_off_policy():
    d = random_batch(7)
    t, rewards, discounts = torch_inputs(d, 0.99)
    target = t["behaviour_logp"] + 1.0  # ratios e > 1: clipping at 1 must bite
    clipped, _ = vtrace(t["behaviour_logp"], target, rewards, t["values"], t["bootstrap"], discounts, 1.0, 1.0)
    unclipped, _ = vtrace(t["behaviour_logp"], target, rewards, t["values"], t["bootstrap"], discounts, 10.0, 10.0)
    on_policy, _ = vtrace(t["behaviour_logp"], t["behaviour_logp"], rewards, t["values"], t["bootstrap"], discounts)
    np.testing.assert_allclose(clipped.numpy(), on_policy.numpy(), atol=1e-5)  # min(1, e) == 1
    assert not np.allclose(unclipped.numpy(), clipped.numpy(), atol=1e-3)
