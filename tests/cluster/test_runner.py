"""Runner: one Fragment per sample() with the documented layout, bootstraps on truncation,
episode stats, determinism per (seed, runner), artificial lag, and env exceptions survived."""
from __future__ import annotations

import numpy as np

from rlfarm import agents
from rlfarm.cluster import Runner
from rlfarm.envs import EnvConfig


def make_runner(seed=0, runner_index=0, envs_per_runner=8, fragment_length=32, artificial_lag=0, **kwargs):
    env_cfg = EnvConfig(id="rlfarm/CartPole-v1", envs_per_runner=envs_per_runner, kwargs=kwargs)
    runner = Runner(env_cfg, agents.PolicyConfig(hidden_sizes=[16]), seed=seed, runner_index=runner_index,
                    fragment_length=fragment_length, artificial_lag=artificial_lag)
    return runner


def learner_for(runner, seed=0):
    return agents.make_learner(*runner.spaces, agents.PolicyConfig(hidden_sizes=[16]),
                               agents.AlgoConfig(device="cpu"), device="cpu", seed=seed)


def test_fragment_layout():
    runner = make_runner()
    runner.set_weights(learner_for(runner).get_weights())
    fragment = runner.sample()
    fragment.validate()
    assert fragment.obs.shape == (33, 8, 4) and fragment.actions.shape == (32, 8)
    assert fragment.actions.dtype == np.int64 and fragment.policy_version == 0
    assert fragment.runner_id == 0 and fragment.env_ms > 0 and fragment.inference_ms > 0
    # consecutive fragments continue: the next fragment's first obs is this one's last
    assert np.array_equal(runner.sample().obs[0], fragment.obs[-1])


def test_episode_stats_match_rewards():
    runner = make_runner(fragment_length=200)
    fragment = runner.sample()
    assert len(fragment.episode_returns) > 8  # a random CartPole policy ends episodes quickly
    assert fragment.episode_returns.dtype == np.float32 and fragment.episode_lengths.dtype == np.int32
    np.testing.assert_array_equal(fragment.episode_returns, fragment.episode_lengths)  # reward 1 per step
    assert int(fragment.terminated.sum() + fragment.truncated.sum()) == len(fragment.episode_returns)


def test_truncated_copies_bootstrap_from_the_value_of_their_final_obs():
    runner = make_runner(fragment_length=12, max_episode_steps=5)
    seen = []

    def spy_value(obs):  # distinct, known values so placement can be checked exactly
        seen.append(np.array(obs))
        return np.arange(1, len(obs) + 1, dtype=np.float32) * 100

    runner.policy.value = spy_value
    fragment = runner.sample()
    cut = fragment.truncated & ~fragment.terminated
    assert cut.sum() > 0 and len(seen) == 1 and len(seen[0]) == cut.sum()
    assert np.all(fragment.final_values[~cut] == 0)
    rows, copies = np.nonzero(cut)
    order = np.lexsort((copies, rows))  # the runner fills in time order, copies ascending
    np.testing.assert_array_equal(fragment.final_values[rows[order], copies[order]],
                                  np.arange(1, cut.sum() + 1) * 100)
    # the final obs is not the autoreset obs that follows it in the fragment
    assert not np.allclose(seen[0][0], fragment.obs[rows[order][0] + 1, copies[order][0]])


def test_same_seed_same_fragment_and_runners_differ():
    a, b, c = make_runner(seed=3), make_runner(seed=3), make_runner(seed=3, runner_index=1)
    weights = learner_for(a).get_weights()
    for runner in (a, b, c):
        runner.set_weights(weights)
    fa, fb, fc = a.sample(), b.sample(), c.sample()
    for name in ("obs", "actions", "logp", "rewards", "terminated"):
        np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
    assert not np.array_equal(fa.obs, fc.obs)
    assert not np.array_equal(fa.obs, make_runner(seed=4).sample().obs)


def test_artificial_lag_acts_with_older_weights():
    runner = make_runner(artificial_lag=2)
    learner = learner_for(runner)
    weights = learner.get_weights()
    for version in range(6):
        runner.set_weights({**weights, "version": version})
        assert runner.version == max(0, version - 2)
    assert runner.sample().policy_version == 3


def test_env_exception_is_counted_not_fatal(capsys):
    runner = make_runner(fragment_length=10)
    real_step, calls = runner.env.step, {"n": 0}

    def flaky_step(actions):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("solver blew up")
        return real_step(actions)

    runner.env.step = flaky_step
    fragment = runner.sample()
    err = capsys.readouterr().err
    assert err.count("env error") == 1 and "RuntimeError: solver blew up (at " in err
    assert "test_runner.py:" in err  # the file:line where the env raised
    fragment.validate()
    assert fragment.env_errors == 8 and runner.env_errors == 8
    assert fragment.truncated[3].all() and not fragment.terminated[3].any()
    assert np.isfinite(fragment.obs).all()


def test_offpolicy_runner_sends_the_final_obs_of_truncated_copies():
    """An off-policy runner's fragment carries each truncated copy's final obs (what a same-step
    env reports in infos["final_obs"]) at its flat row, and acts through the DQN acting policy."""
    env_cfg = EnvConfig(id="rlfarm/CartPole-v1", envs_per_runner=8, kwargs={"max_episode_steps": 5})
    algo = agents.AlgoConfig(name="dqn", device="cpu")
    runner = Runner(env_cfg, agents.PolicyConfig(hidden_sizes=[16]), seed=0, runner_index=0,
                    fragment_length=12, algo_cfg=algo)
    learner = agents.make_learner(*runner.spaces, agents.PolicyConfig(hidden_sizes=[16]), algo, seed=0)
    runner.set_weights(learner.get_weights())
    seen = []
    step = runner.env.step

    def spy_step(actions):
        out = step(actions)
        seen.append(np.array(out[4]["final_obs"]) if "final_obs" in out[4] else None)
        return out

    runner.env.step = spy_step
    fragment = runner.sample()
    fragment.validate()
    cut = fragment.truncated & ~fragment.terminated
    assert cut.sum() > 0 and len(fragment.final_index) == cut.sum()
    expected = np.flatnonzero(cut.ravel())
    np.testing.assert_array_equal(np.sort(fragment.final_index), expected)
    for row, index in zip(fragment.final_obs, fragment.final_index):
        t, n = divmod(int(index), 8)
        np.testing.assert_array_equal(row, seen[t][n])
        assert not np.array_equal(row, fragment.obs[t + 1, n])  # not the next episode's first obs
