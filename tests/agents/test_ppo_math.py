"""The learners' loss and targets against a CleanRL-style reference written out here."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlfarm import agents
from rlfarm.agents.advantages import fold_episode_ends, gae

OBS = spaces.Box(-np.inf, np.inf, (4,), np.float32)


def off_policy_fragment(seed: int, steps: int = 12, envs: int = 10) -> agents.Fragment:
    """Random data whose behaviour log-probs differ from the learner's, so the clip bites."""
    rng = np.random.default_rng(seed)
    fragment = agents.Fragment.allocate(steps, envs, (4,))
    fragment.obs[:] = rng.normal(size=fragment.obs.shape)
    fragment.actions[:] = rng.integers(0, 2, size=fragment.actions.shape)
    fragment.logp[:] = np.log(rng.uniform(0.2, 0.8, size=(steps, envs)))
    fragment.values[:] = rng.normal(size=(steps, envs))
    fragment.rewards[:] = rng.normal(size=(steps, envs))
    fragment.terminated[:] = rng.random((steps, envs)) < 0.1
    fragment.truncated[:] = (rng.random((steps, envs)) < 0.1) & ~fragment.terminated
    fragment.final_values[fragment.truncated] = rng.normal(size=int(fragment.truncated.sum()))
    return fragment


def reference_ppo_step(model, fragment, cfg: agents.AlgoConfig) -> dict[str, float]:
    """One full-batch PPO step's metrics, CleanRL's ppo.py written out with torch.distributions."""
    t = {name: torch.from_numpy(getattr(fragment, name)) for name in
         ("obs", "actions", "logp", "values", "rewards", "terminated", "truncated", "final_values")}
    with torch.no_grad():
        bootstrap = model.value(t["obs"][-1])
    rewards, discounts = fold_episode_ends(t["rewards"], t["terminated"], t["truncated"], t["final_values"], cfg.gamma)
    advantages, returns = gae(rewards, t["values"], bootstrap, discounts, cfg.gae_lambda)
    obs, actions = t["obs"][:-1].reshape(-1, 4), t["actions"].reshape(-1)
    old_logp, old_values = t["logp"].reshape(-1), t["values"].reshape(-1)
    advantages, returns = advantages.reshape(-1), returns.reshape(-1)

    logits, new_values = model(obs)
    dist = torch.distributions.Categorical(logits=logits)
    log_ratio = dist.log_prob(actions) - old_logp
    ratio = log_ratio.exp()
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
    v_loss_unclipped = (new_values - returns) ** 2
    if cfg.clip_vloss:
        v_clipped = old_values + torch.clamp(new_values - old_values, -cfg.clip_coef, cfg.clip_coef)
        v_loss = 0.5 * torch.max(v_loss_unclipped, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * v_loss_unclipped.mean()
    entropy = dist.entropy().mean()
    loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    return {
        "losses/policy": pg_loss.item(), "losses/value": v_loss.item(), "losses/entropy": entropy.item(),
        "losses/approx_kl": ((ratio - 1) - log_ratio).mean().item(),
        "losses/clip_fraction": ((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item(),
        "losses/grad_norm": grad_norm.item(),
        "losses/explained_variance": (1 - (returns - old_values).var() / returns.var()).item(),
    }


@pytest.mark.parametrize("clip_vloss", [False, True])
def test_ppo_update_metrics_match_the_reference_loss(clip_vloss):
    cfg = agents.AlgoConfig(epochs=1, minibatches=1, normalize_obs=False, clip_vloss=clip_vloss,
                            ent_coef=0.05, vf_coef=0.7, clip_coef=0.15, anneal_lr=False)
    learner = agents.make_learner(OBS, spaces.Discrete(2), agents.PolicyConfig(hidden_sizes=[16]), cfg,
                                  device="cpu", seed=0)
    fragment = off_policy_fragment(seed=1)
    expected = reference_ppo_step(copy.deepcopy(learner.model), fragment, cfg)
    assert 0.05 < expected["losses/clip_fraction"] < 0.95  # the ratio clip is exercised
    metrics = learner.update([fragment])
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_value_clipping_changes_the_value_loss():
    losses = {}
    for clip_vloss in (False, True):
        cfg = agents.AlgoConfig(epochs=1, minibatches=1, normalize_obs=False, clip_vloss=clip_vloss, clip_coef=0.05)
        learner = agents.make_learner(OBS, spaces.Discrete(2), agents.PolicyConfig(hidden_sizes=[16]), cfg,
                                      device="cpu", seed=0)
        losses[clip_vloss] = learner.update([off_policy_fragment(seed=2)])["losses/value"]
    assert losses[True] > losses[False]  # max(unclipped, clipped) >= unclipped, strictly here


def on_policy_fragment(learner, seed: int, steps: int = 12, envs: int = 10) -> agents.Fragment:
    """Behaviour log-probs and values from the learner's own current network."""
    fragment = off_policy_fragment(seed, steps, envs)
    policy = agents.ActingPolicy(OBS, spaces.Discrete(2), agents.PolicyConfig(hidden_sizes=[16]), seed=seed)
    policy.set_weights(learner.get_weights())
    for t in range(steps):
        fragment.actions[t], fragment.logp[t], fragment.values[t] = policy.act(fragment.obs[t])
    return fragment


@pytest.mark.parametrize("vtrace", [True, False])
def test_appo_targets_on_policy_equal_ppo_gae(vtrace):
    """On-policy with lambda = 1 and unclipped ratios, V-trace's targets are GAE(1)'s; with
    vtrace off, APPO uses GAE(lambda) on the behaviour values, i.e. exactly PPO's targets."""
    lam = 1.0 if vtrace else 0.9
    common = dict(gae_lambda=lam, normalize_obs=False, rho_bar=1.0, c_bar=1.0)
    appo = agents.make_learner(OBS, spaces.Discrete(2), agents.PolicyConfig(hidden_sizes=[16]),
                               agents.AlgoConfig(name="appo", vtrace=vtrace, **common), device="cpu", seed=0)
    ppo = agents.make_learner(OBS, spaces.Discrete(2), agents.PolicyConfig(hidden_sizes=[16]),
                              agents.AlgoConfig(name="ppo", **common), device="cpu", seed=0)
    batch = appo.stage([on_policy_fragment(appo, seed=3)])
    appo_adv, appo_returns, _ = appo.targets(batch, batch.obs)
    ppo_adv, ppo_returns, _ = ppo.targets(batch, batch.obs)
    torch.testing.assert_close(appo_returns, ppo_returns, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(appo_adv, ppo_adv, rtol=1e-5, atol=1e-5)


def test_appo_vtrace_corrects_stale_behaviour():
    """Off-policy data: V-trace targets differ from GAE on the stale behaviour values, which
    is what APPO without V-trace uses (the same targets as PPO's)."""
    targets = {}
    for name, vtrace in (("appo", True), ("appo", False), ("ppo", True)):
        learner = agents.make_learner(OBS, spaces.Discrete(2), agents.PolicyConfig(hidden_sizes=[16]),
                                      agents.AlgoConfig(name=name, vtrace=vtrace, normalize_obs=False),
                                      device="cpu", seed=0)
        batch = learner.stage([off_policy_fragment(seed=4)])
        targets[name, vtrace] = learner.targets(batch, batch.obs)[1]
    assert not torch.allclose(targets["appo", True], targets["appo", False], atol=1e-2)
    torch.testing.assert_close(targets["appo", False], targets["ppo", True])
