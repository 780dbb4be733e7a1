"""Policy heads, trunks and the acting copy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlfarm import agents
from rlfarm.agents import distributions
from rlfarm.agents.distributions import ActionSpec
from rlfarm.agents.policy import ActorCritic

OBS = spaces.Box(-5, 5, (6,), np.float32)


@pytest.mark.parametrize("action_space", [
    spaces.Discrete(3), spaces.MultiDiscrete([2, 4, 3]), spaces.Box(-1, 1, (2,), np.float32)])
def test_act_returns_consistent_actions_logp_values(action_space):
    policy = agents.ActingPolicy(OBS, action_space, seed=0)
    obs = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    actions, logp, values = policy.act(obs)
    assert actions.shape == (32, *action_space.shape)
    assert logp.dtype == np.float32 and logp.shape == (32,)
    assert values.dtype == np.float32 and values.shape == (32,)
    np.testing.assert_allclose(values, policy.value(obs), rtol=1e-6)
    # the log-prob is that of the returned action under the current distribution
    with torch.no_grad():
        obs_t = torch.from_numpy(obs)
        relogp, _, _ = policy.model.evaluate(obs_t, torch.from_numpy(actions))
    np.testing.assert_allclose(logp, relogp.numpy(), rtol=1e-5, atol=1e-6)
    assert all(action_space.contains(a) for a in policy.env_actions(actions))


def reference_dist(spec, head_out, log_std):
    if spec.kind == "box":
        return torch.distributions.Independent(torch.distributions.Normal(head_out, log_std.exp()), 1)
    return [torch.distributions.Categorical(logits=lg) for lg in torch.split(head_out, list(spec.nvec), -1)]


@pytest.mark.parametrize("space", [spaces.Discrete(4), spaces.MultiDiscrete([3, 5]), spaces.Box(-2, 2, (3,))])
def test_log_prob_and_entropy_match_torch_distributions(space):
    spec = ActionSpec.from_space(space)
    gen = torch.Generator().manual_seed(1)
    head_out = torch.randn(50, spec.num_outputs, generator=gen)
    log_std = torch.randn(spec.num_outputs, generator=gen) * 0.3 if spec.kind == "box" else None
    actions = distributions.sample(spec, head_out, log_std, gen)
    ours_logp = distributions.log_prob(spec, head_out, log_std, actions)
    ours_entropy = distributions.entropy(spec, head_out, log_std)
    ref = reference_dist(spec, head_out, log_std)
    if spec.kind == "box":
        ref_logp, ref_entropy = ref.log_prob(actions), ref.entropy()
    elif spec.kind == "discrete":
        ref_logp, ref_entropy = ref[0].log_prob(actions), ref[0].entropy()
    else:
        ref_logp = sum(d.log_prob(actions[:, i]) for i, d in enumerate(ref))
        ref_entropy = sum(d.entropy() for d in ref)
    np.testing.assert_allclose(ours_logp.numpy(), ref_logp.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours_entropy.numpy(), ref_entropy.numpy(), rtol=1e-5, atol=1e-5)


def test_categorical_sampling_follows_the_probabilities():
    spec = ActionSpec.from_space(spaces.Discrete(3))
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]])).expand(200_000, 3)
    actions = distributions.sample(spec, logits, None, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(np.bincount(actions.numpy(), minlength=3) / 200_000, [0.2, 0.5, 0.3], atol=0.005)


def test_box_logp_is_of_the_unclipped_sample_and_env_actions_clip():
    box = spaces.Box(-0.1, 0.1, (2,), np.float32)
    policy = agents.ActingPolicy(OBS, box, agents.PolicyConfig(init_log_std=0.5), seed=3)
    obs = np.zeros((500, 6), np.float32)
    actions, logp, _ = policy.act(obs)
    assert np.abs(actions).max() > 0.1  # std e^0.5: most samples leave the bounds
    clipped = policy.env_actions(actions)
    assert clipped.min() >= -0.1 and clipped.max() <= 0.1
    mean = policy.model(torch.from_numpy(obs))[0].detach().numpy()
    std = math.exp(0.5)
    expected = (-0.5 * ((actions - mean) / std) ** 2 - 0.5 - 0.5 * math.log(2 * math.pi)).sum(-1)
    np.testing.assert_allclose(logp, expected, rtol=1e-5, atol=1e-5)


def test_deterministic_act_and_seeding():
    a, b = agents.ActingPolicy(OBS, spaces.Discrete(5), seed=7), agents.ActingPolicy(OBS, spaces.Discrete(5), seed=7)
    b.model.load_state_dict(a.model.state_dict())
    obs = np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32)
    np.testing.assert_array_equal(a.act(obs)[0], b.act(obs)[0])  # same seed, same stream
    c = agents.ActingPolicy(OBS, spaces.Discrete(5), seed=8)
    c.model.load_state_dict(a.model.state_dict())
    assert not np.array_equal(a.act(obs)[0], c.act(obs)[0])
    greedy = a.act(obs, deterministic=True)[0]
    np.testing.assert_array_equal(greedy, a.model(torch.from_numpy(obs))[0].argmax(-1).numpy())


def test_orthogonal_init_as_cleanrl():
    model = ActorCritic((6,), ActionSpec.from_space(spaces.Discrete(3)), agents.PolicyConfig(hidden_sizes=[64, 64]))
    hidden = model.actor_trunk.net[2].weight  # 64 x 64, gain sqrt(2): W W^T = 2 I
    np.testing.assert_allclose((hidden @ hidden.T).detach().numpy(), 2 * np.eye(64), atol=1e-4)
    assert model.actor_head.weight.norm().item() == pytest.approx(0.01 * math.sqrt(3), rel=1e-3)
    assert model.critic_head.weight.norm().item() == pytest.approx(1.0, rel=1e-3)
    assert all(float(p.detach().abs().sum()) == 0 for n, p in model.named_parameters() if n.endswith("bias"))


def test_shared_trunk_has_one_trunk():
    cfg = agents.PolicyConfig(shared_trunk=True)
    shared = ActorCritic((6,), ActionSpec.from_space(spaces.Discrete(3)), cfg)
    separate = ActorCritic((6,), ActionSpec.from_space(spaces.Discrete(3)), agents.PolicyConfig())
    assert sum(p.numel() for p in shared.parameters()) < sum(p.numel() for p in separate.parameters())
    assert not any(k.startswith("critic_trunk") for k in shared.state_dict())


@pytest.mark.parametrize("obs_shape,field_shape", [((64,), None), ((8, 8), None), ((2, 8, 8), None), ((64 + 3,), [8, 8])])
def test_cnn_trunk_takes_fields(obs_shape, field_shape):
    obs_space = spaces.Box(-1, 1, obs_shape, np.float32)
    cfg = agents.PolicyConfig(trunk="cnn", field_shape=field_shape, hidden_sizes=[32])
    policy = agents.ActingPolicy(obs_space, spaces.Box(-1, 1, (4,), np.float32), cfg, seed=0)
    assert any(isinstance(m, torch.nn.Conv2d) for m in policy.model.modules())
    actions, logp, values = policy.act(np.random.default_rng(0).normal(size=(5, *obs_shape)).astype(np.float32))
    assert actions.shape == (5, 4) and values.shape == (5,)


def test_cnn_extra_features_reach_the_output():
    cfg = agents.PolicyConfig(trunk="cnn", field_shape=[4, 4], hidden_sizes=[16])
    model = ActorCritic((18,), ActionSpec.from_space(spaces.Discrete(2)), cfg)
    obs = torch.zeros(1, 18)
    moved = obs.clone()
    moved[0, 17] = 5.0  # an extra feature after the 4x4 field
    assert not torch.allclose(model.value(obs), model.value(moved))


def test_cnn_rejects_non_square_flat_obs():
    with pytest.raises(ValueError, match="field_shape"):
        agents.ActingPolicy(spaces.Box(-1, 1, (10,)), spaces.Discrete(2), agents.PolicyConfig(trunk="cnn"))
    with pytest.raises(ValueError, match="field_shape"):
        agents.ActingPolicy(spaces.Box(-1, 1, (10,)), spaces.Discrete(2),
                            agents.PolicyConfig(trunk="cnn", field_shape=[4, 4]))


def test_set_weights_installs_params_normalizer_and_version():
    learner = agents.make_learner(OBS, spaces.Discrete(3), device="cpu", seed=0)
    learner.normalizer.update(np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 6)))
    policy = agents.ActingPolicy(OBS, spaces.Discrete(3), seed=0)
    assert policy.version == -1
    policy.set_weights(learner.get_weights())
    assert policy.version == 0
    obs = np.random.default_rng(1).normal(3.0, 2.0, size=(10, 6)).astype(np.float32)
    with torch.no_grad():
        expected = learner.model.value(torch.from_numpy(learner.normalizer.normalize(obs)))
    np.testing.assert_allclose(policy.value(obs), expected.numpy(), rtol=1e-5, atol=1e-6)
