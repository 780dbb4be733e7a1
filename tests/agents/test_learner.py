"""PPO/APPO learners: metrics, versions, normalizer timing, annealing, determinism, learning."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlfarm import agents

OBS = spaces.Box(-np.inf, np.inf, (4,), np.float32)
PPO_KEYS = {"losses/policy", "losses/value", "losses/entropy", "losses/approx_kl", "losses/clip_fraction",
            "losses/explained_variance", "losses/grad_norm", "perf/learner_samples_per_s", "perf/learner_update_ms"}


def random_fragment(rng, steps=16, envs=8, action_space=None, version=0, obs_loc=0.0):
    action_space = spaces.Discrete(2) if action_space is None else action_space
    action_shape = action_space.shape
    dtype = np.float32 if isinstance(action_space, spaces.Box) else np.int64
    fragment = agents.Fragment.allocate(steps, envs, (4,), action_shape, dtype, policy_version=version)
    fragment.obs[:] = rng.normal(obs_loc, 2.0, size=fragment.obs.shape)
    if isinstance(action_space, spaces.Box):
        fragment.actions[:] = rng.normal(size=fragment.actions.shape)
    else:
        high = action_space.nvec if isinstance(action_space, spaces.MultiDiscrete) else action_space.n
        fragment.actions[:] = rng.integers(0, high, size=fragment.actions.shape)
    fragment.logp[:] = -0.7
    fragment.values[:] = rng.normal(size=(steps, envs))
    fragment.rewards[:] = rng.normal(size=(steps, envs))
    fragment.terminated[:] = rng.random((steps, envs)) < 0.05
    return fragment


@pytest.mark.parametrize("name", ["ppo", "appo"])
@pytest.mark.parametrize("action_space", [spaces.Discrete(2), spaces.MultiDiscrete([3, 2]), spaces.Box(-1, 1, (2,))])
def test_update_returns_the_contract_metrics(name, action_space):
    rng = np.random.default_rng(0)
    learner = agents.make_learner(OBS, action_space, agents.PolicyConfig(hidden_sizes=[16]),
                                  agents.AlgoConfig(name=name), device="cpu", seed=0)
    assert isinstance(learner, agents.APPOLearner if name == "appo" else agents.PPOLearner)
    metrics = learner.update([random_fragment(rng, action_space=action_space) for _ in range(2)])
    expected = PPO_KEYS | ({"perf/policy_lag_mean", "perf/policy_lag_max"} if name == "appo" else set())
    assert expected <= set(metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert learner.version == 1 and learner.env_steps_consumed == 2 * 16 * 8
    assert learner.get_weights()["version"] == 1


def test_update_changes_params_and_normalizer_after_not_during():
    rng = np.random.default_rng(1)
    learner = agents.make_learner(OBS, spaces.Discrete(2), device="cpu", seed=0)
    before = {k: v.copy() for k, v in learner.get_weights()["params"].items()}
    seen_means = []
    original = learner.normalize
    learner.normalize = lambda obs: (seen_means.append(learner.normalizer.mean.copy()), original(obs))[1]
    fragment = random_fragment(rng, obs_loc=5.0)
    learner.update([fragment])
    np.testing.assert_array_equal(seen_means[0], np.zeros(4))  # frozen during the update
    np.testing.assert_allclose(learner.normalizer.mean, fragment.obs[:-1].reshape(-1, 4).mean(0), rtol=1e-3)
    after = learner.get_weights()["params"]
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_lr_anneals_linearly_to_zero():
    rng = np.random.default_rng(2)
    learner = agents.make_learner(OBS, spaces.Discrete(2), algo_cfg=agents.AlgoConfig(lr=1e-3),
                                  total_env_steps=4 * 128, device="cpu", seed=0)
    lrs = [learner.update([random_fragment(rng)])["learner/lr"] for _ in range(4)]
    np.testing.assert_allclose(lrs, [1e-3, 0.75e-3, 0.5e-3, 0.25e-3])


def test_same_seed_same_weights_different_seed_different():
    def run(seed):
        rng = np.random.default_rng(3)
        learner = agents.make_learner(OBS, spaces.Discrete(2), device="cpu", seed=seed)
        for _ in range(2):
            learner.update([random_fragment(rng)])
        return learner.get_weights()["params"]
    a, b, c = run(0), run(0), run(1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_appo_reports_policy_lag():
    rng = np.random.default_rng(4)
    learner = agents.make_learner(OBS, spaces.Discrete(2), algo_cfg=agents.AlgoConfig(name="appo"), device="cpu", seed=0)
    for _ in range(5):
        learner.update([random_fragment(rng)])
    metrics = learner.update([random_fragment(rng, version=1), random_fragment(rng, version=4)])
    assert metrics["perf/policy_lag_mean"] == 2.5 and metrics["perf/policy_lag_max"] == 4.0


def test_bad_fragments_are_rejected_with_a_clear_message():
    learner = agents.make_learner(OBS, spaces.Discrete(2), device="cpu", seed=0)
    bad = agents.Fragment.allocate(4, 2, (5,))
    with pytest.raises(ValueError, match="obs shape"):
        learner.update([bad])
    with pytest.raises(ValueError, match="no fragments"):
        learner.update([])


@pytest.mark.slow
def test_ppo_learns_a_contextual_bandit():
    """Reward 1 when the action equals the sign of obs[0]: PPO must find it in a few updates."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(5)
    learner = agents.make_learner(OBS, spaces.Discrete(2), algo_cfg=agents.AlgoConfig(lr=3e-3), device="cpu", seed=0)
    policy = agents.ActingPolicy(OBS, spaces.Discrete(2), seed=0)
    for _ in range(30):
        policy.set_weights(learner.get_weights())
        fragment = agents.Fragment.allocate(16, 32, (4,), policy_version=policy.version)
        fragment.obs[:] = rng.normal(size=fragment.obs.shape)
        for t in range(16):
            fragment.actions[t], fragment.logp[t], fragment.values[t] = policy.act(fragment.obs[t])
        fragment.rewards[:] = (fragment.actions == (fragment.obs[:-1, :, 0] > 0)).astype(np.float32)
        fragment.terminated[:] = True  # one-step episodes
        learner.update([fragment])
    policy.set_weights(learner.get_weights())
    obs = rng.normal(size=(2000, 4)).astype(np.float32)
    accuracy = (policy.act(obs, deterministic=True)[0] == (obs[:, 0] > 0)).mean()
    assert accuracy > 0.95


CARTPOLE_PPO = dict(num_envs=64, horizon=32)


# PPO's CartPole claim is tested, over seeds with a stated rule, through the serial farm that
# runs this learner: tests/experiments/test_learning.py. At this layer, with lr 3e-3, 2
# minibatches and the observation normalizer (not the demo's settings), seeds 0-9 solved
# 8 of 10 on a 2-core AMD EPYC (seeds 7 and 9 did not): too fragile for a CI rule.


@pytest.mark.slow
def test_appo_with_lag_4_solves_cartpole(cartpole_trainer):
    """Runners act with weights 4 versions old; V-trace corrects for it.

    Rule: at least 2 of seeds 0-2 reach a mean return of 475 within 500k env steps, one bad
    seed cannot fail it. Measured (2-core AMD EPYC, seeds 0-9): 10 of 10 solved, in 115k-162k
    env steps (median 121k).
    """
    results = [cartpole_trainer(agents.PolicyConfig(), agents.AlgoConfig(name="appo", lr=3e-3, minibatches=2),
                                **CARTPOLE_PPO, total_env_steps=500_000, seed=seed, lag=4) for seed in range(3)]
    solved = [result["solved"] for result in results]
    assert sum(solved) >= 2, [result["return_mean_100"] for result in results]
    assert all(result["metrics"]["perf/policy_lag_max"] == 4.0 for result in results)


def test_read_only_fragments_and_weights_work_without_warnings(recwarn):
    """What arrives through Ray's object store is read-only."""
    rng = np.random.default_rng(6)
    learner = agents.make_learner(OBS, spaces.Discrete(2), device="cpu", seed=0)
    fragment = random_fragment(rng)
    for name in ("obs", "actions", "logp", "values", "rewards", "terminated", "truncated", "final_values"):
        getattr(fragment, name).flags.writeable = False
    learner.update([fragment])
    weights = learner.get_weights()
    for array in weights["params"].values():
        array.flags.writeable = False
    policy = agents.ActingPolicy(OBS, spaces.Discrete(2), seed=0)
    policy.set_weights(weights)
    policy.act(np.zeros((3, 4), np.float32))
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_data_parallel_hooks_are_called():
    """cluster/ddp.py plugs all-reduces in here; check the hooks see gradients and moments."""
    calls = {"grads": 0, "moments": 0}

    def grad_sync(params):
        assert all(p.grad is not None for p in params)
        calls["grads"] += 1

    def moments_sync(mean, var, count):
        calls["moments"] += 1
        return mean, var, count * 2  # as if a second rank had the same data

    learner = agents.make_learner(OBS, spaces.Discrete(2), algo_cfg=agents.AlgoConfig(epochs=2, minibatches=3),
                                  device="cpu", seed=0)
    learner.grad_sync, learner.moments_sync = grad_sync, moments_sync
    learner.update([random_fragment(np.random.default_rng(7))])
    assert calls == {"grads": 6, "moments": 1}
    assert learner.normalizer.count == pytest.approx(2 * 16 * 8, abs=1e-3)
