"""The numpy acting path against the torch ActorCritic it mirrors (agents/numpy_acting.py)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlfarm import agents
from rlfarm.agents.acting import ActingPolicy
from rlfarm.agents.normalizer import RunningMeanStd
from rlfarm.agents.numpy_acting import NumpyActingPolicy

OBS = spaces.Box(-5, 5, (6,), np.float32)
SPACES = [spaces.Discrete(3), spaces.MultiDiscrete([2, 4, 3]), spaces.Box(-1, 1, (2,), np.float32)]


def published(torch_policy: ActingPolicy, version: int = 5, normalizer: dict | None = None) -> dict:
    """Weights as a learner publishes them: numpy params, normalizer state, version."""
    params = {name: value.numpy().copy() for name, value in torch_policy.model.state_dict().items()}
    return {"version": version, "params": params, "normalizer": normalizer}


def twin_policies(action_space, cfg: agents.PolicyConfig, normalizer: dict | None = None):
    """A torch ActingPolicy and a NumpyActingPolicy holding the same weights."""
    torch.manual_seed(0)
    reference = ActingPolicy(OBS, action_space, cfg, seed=0)
    with torch.no_grad():  # non-zero biases, so a bias mix-up cannot hide
        for param in reference.model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    weights = published(reference, normalizer=normalizer)
    reference.set_weights(weights)
    ours = NumpyActingPolicy(OBS, action_space, cfg, seed=1)
    ours.set_weights(weights)
    return reference, ours


def some_normalizer() -> dict:
    stats = RunningMeanStd((6,))
    stats.update(np.random.default_rng(3).normal(1.0, 2.0, size=(500, 6)))
    return stats.state_dict()


@pytest.mark.parametrize("action_space", SPACES, ids=["discrete", "multidiscrete", "box"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "silu"])
@pytest.mark.parametrize("shared_trunk", [False, True])
def test_matches_torch_forward_and_log_probs(action_space, activation, shared_trunk):
    cfg = agents.PolicyConfig(hidden_sizes=[32, 16], activation=activation, shared_trunk=shared_trunk)
    reference, ours = twin_policies(action_space, cfg, normalizer=some_normalizer())
    obs = np.random.default_rng(0).normal(0.0, 3.0, size=(64, 6)).astype(np.float32)
    np.testing.assert_allclose(ours.value(obs), reference.value(obs), rtol=1e-5, atol=1e-5)
    actions, logp, values = ours.act(obs)
    assert actions.shape == (64, *action_space.shape) and actions.dtype == reference.act(obs)[0].dtype
    assert logp.dtype == np.float32 and values.dtype == np.float32
    np.testing.assert_allclose(values, reference.value(obs), rtol=1e-5, atol=1e-5)
    # the learner re-evaluates the runner's actions in torch: the log-probs must agree
    with torch.no_grad():
        obs_t = reference._obs_tensor(obs)
        relogp, _, _ = reference.model.evaluate(obs_t, torch.from_numpy(actions))
    np.testing.assert_allclose(logp, relogp.numpy(), rtol=1e-5, atol=1e-5)
    greedy, reference_greedy = ours.act(obs, deterministic=True)[0], reference.act(obs, deterministic=True)[0]
    if isinstance(action_space, spaces.Box):  # the Gaussian mean, from two different matmuls
        np.testing.assert_allclose(greedy, reference_greedy, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(greedy, reference_greedy)


def test_categorical_samples_follow_the_softmax():
    reference, ours = twin_policies(spaces.Discrete(3), agents.PolicyConfig(hidden_sizes=[8]))
    obs = np.tile(np.random.default_rng(1).normal(size=(1, 6)).astype(np.float32), (60_000, 1))
    with torch.no_grad():
        logits, _ = reference.model(torch.from_numpy(obs[:1]))
    probs = torch.softmax(logits[0], -1).numpy()
    frequencies = np.bincount(ours.act(obs)[0], minlength=3) / len(obs)
    # 60k draws: the standard error of each frequency is under 0.0021
    np.testing.assert_allclose(frequencies, probs, atol=0.01)


def test_gaussian_samples_have_the_policy_mean_and_std():
    cfg = agents.PolicyConfig(hidden_sizes=[8], init_log_std=-0.5)
    reference, ours = twin_policies(spaces.Box(-1, 1, (2,), np.float32), cfg)
    obs = np.zeros((40_000, 6), np.float32)
    actions = ours.act(obs)[0]
    mean = ours.act(obs[:1], deterministic=True)[0][0]
    np.testing.assert_allclose(actions.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(actions.std(0), np.exp(reference.model.log_std.detach().numpy()), rtol=0.03)


def test_same_seed_same_actions_other_seed_other_actions():
    obs = np.random.default_rng(2).normal(size=(256, 6)).astype(np.float32)
    make = lambda seed: NumpyActingPolicy(OBS, spaces.Discrete(5), seed=seed)  # noqa: E731
    first, again, other = make(7), make(7), make(8)
    np.testing.assert_array_equal(first.act(obs)[0], again.act(obs)[0])
    np.testing.assert_array_equal(first.value(obs), again.value(obs))
    assert not np.array_equal(first.act(obs)[0], other.act(obs)[0])


def test_version_and_weights_that_do_not_fit():
    policy = NumpyActingPolicy(OBS, spaces.Discrete(2), seed=0)
    assert policy.version == -1
    other = ActingPolicy(OBS, spaces.Discrete(3), seed=0)
    with pytest.raises(ValueError, match="actor_head"):
        policy.set_weights(published(other))
    with pytest.raises(ValueError, match=r"obs: expected shape \[N, 6\]"):
        policy.act(np.zeros((4, 5), np.float32))


def test_backend_choice_and_config_errors():
    from rlfarm.agents import config, numpy_acting

    assert set(numpy_acting.ACTIVATIONS) == set(config.NUMPY_ACTIVATIONS)
    mlp = agents.make_acting_policy(OBS, spaces.Discrete(2), agents.PolicyConfig(), seed=0)
    assert isinstance(mlp, NumpyActingPolicy)
    gelu = agents.make_acting_policy(OBS, spaces.Discrete(2), agents.PolicyConfig(activation="gelu"), seed=0)
    assert isinstance(gelu, ActingPolicy)
    forced = agents.make_acting_policy(OBS, spaces.Discrete(2), agents.PolicyConfig(acting_backend="torch"), seed=0)
    assert isinstance(forced, ActingPolicy)
    with pytest.raises(ValueError, match="^acting_backend: numpy needs trunk mlp"):
        agents.PolicyConfig(trunk="cnn", acting_backend="numpy")
    with pytest.raises(ValueError, match="^acting_backend: must be one of"):
        agents.PolicyConfig(acting_backend="jax")


def test_a_numpy_runner_never_imports_torch():
    script = (
        "import sys\n"
        "from types import SimpleNamespace\n"
        "from rlfarm import agents\n"
        "from rlfarm.cluster.runner import Runner\n"
        "env = SimpleNamespace(id='rlfarm/CartPole-v1', envs_per_runner=8, kwargs={})\n"
        "runner = Runner(env, agents.PolicyConfig(), seed=0, runner_index=0, fragment_length=4)\n"
        "assert runner.sample().rewards.shape == (4, 8)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
