"""Bad env data never reaches the model (issue 19, cases 1 and 2): NaN/Inf from an env is
reset and counted, errors are not episodes, the learner rolls back non-finite updates, no
checkpoint holds NaN, and too many env errors or skipped updates stop the run with exit 1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rlfarm import agents
from rlfarm.cluster.runner import Runner
from rlfarm.envs import EnvConfig

from . import bad_envs  # noqa: F401 - registers the envs
from .conftest import only_run_dir, read_summary


def _runner(env_id: str, envs: int = 4, steps: int = 28, **kwargs) -> Runner:
    return Runner(EnvConfig(id=env_id, envs_per_runner=envs, kwargs=kwargs), agents.PolicyConfig(hidden_sizes=[16]),
                  seed=0, runner_index=0, fragment_length=steps)


def test_nan_and_inf_from_an_env_are_reset_counted_and_never_in_the_fragment(capsys):
    runner = _runner("rlfarm_test/NaNCartPole-v0", every=7)
    fragment = runner.sample()
    fragment.validate()
    # Every copy goes bad at its steps 7 (NaN obs), 14 (Inf reward), 21 (NaN), 28 (Inf); a bad
    # step resets the whole vector env, so the copies stay in step: 4 bad rows of 4 copies.
    assert fragment.env_errors == 16
    for field in ("obs", "rewards", "values", "final_values", "logp"):
        assert np.isfinite(getattr(fragment, field)).all(), field
    bad_rows = [6, 13, 20, 27]
    assert fragment.truncated[bad_rows].all() and (fragment.rewards[bad_rows] == 0).all()
    assert len(fragment.episode_returns) == 0 or np.isfinite(fragment.episode_returns).all()
    assert capsys.readouterr().err.count("env error") == 1


def test_an_env_that_raises_counts_errors_not_episodes(capsys):
    fragment = _runner("rlfarm_test/RaisingCartPole-v0", steps=10).sample()
    assert fragment.env_errors == 40 and len(fragment.episode_returns) == 0
    err = capsys.readouterr().err
    assert err.count("env error") == 1 and "ValueError: the solver diverged (at " in err and "bad_envs.py:" in err


def _learner(**algo):
    import gymnasium as gym

    obs_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    return agents.make_learner(obs_space, gym.spaces.Discrete(2), agents.PolicyConfig(hidden_sizes=[16]),
                               agents.AlgoConfig(device="cpu", **algo), device="cpu", seed=0)


def _fragment(rewards: float) -> agents.Fragment:
    rng = np.random.default_rng(0)
    fragment = agents.Fragment.allocate(8, 4, (4,), runner_id=0, policy_version=0)
    fragment.obs[:] = rng.standard_normal(fragment.obs.shape)
    fragment.actions[:] = rng.integers(0, 2, fragment.actions.shape)
    fragment.logp[:], fragment.values[:], fragment.rewards[:] = -0.69, 0.0, rewards
    fragment.terminated[:], fragment.truncated[:], fragment.final_values[:] = False, False, 0.0
    return fragment


def test_the_learner_rolls_back_a_non_finite_update_and_stops_after_too_many():
    learner = _learner(max_skipped_updates=3)
    learner.update([_fragment(1.0)])
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    version, normalizer = learner.version, learner.normalizer.state_dict()["mean"].copy()
    for skipped in (1, 2):
        metrics = learner.update([_fragment(np.nan)])
        assert metrics["perf/skipped_updates"] == skipped and learner.version == version
    for name, tensor in learner.model.state_dict().items():
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)
    np.testing.assert_array_equal(learner.normalizer.state_dict()["mean"], normalizer)
    assert learner.update([_fragment(1.0)])["perf/skipped_updates"] == 2  # a good one resets the streak
    assert learner.version == version + 1
    learner.update([_fragment(np.inf)]), learner.update([_fragment(np.nan)])
    with pytest.raises(agents.learner.NonFiniteUpdates, match="3 learner updates in a row"):
        learner.update([_fragment(np.nan)])
    assert all(torch.isfinite(t).all() for t in learner.model.state_dict().values())


def test_a_checkpoint_with_a_non_finite_tensor_is_never_written(tmp_path):
    from rlfarm.agents.checkpoint import save_checkpoint

    learner = _learner()
    with torch.no_grad():
        next(learner.model.parameters())[0] = float("nan")
    with pytest.raises(agents.CheckpointError, match="NaN or Inf"):
        save_checkpoint(tmp_path / "ckpt.pt", learner)
    assert not list(tmp_path.iterdir())


def test_a_run_whose_env_always_raises_stops_with_exit_1(write_config, runs_dir, train, capsys):
    config = write_config({"env": {"id": "rlfarm_test/RaisingCartPole-v0"}})
    assert train(config) == 1
    err = capsys.readouterr().err
    assert "farm.max_env_error_rate=0.5" in err and "Traceback" not in err
    assert err.count("ValueError: the solver diverged") == 2  # once per runner
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["exit_reason"] == "crashed" and summary["episodes"] == 0 and summary["env_errors"] > 0


def test_a_run_on_a_nan_env_keeps_finite_weights(write_config, runs_dir, train, tmp_path, capsys):
    from rlfarm.agents.checkpoint import read_checkpoint

    config = write_config({"env": {"id": "rlfarm_test/NaNCartPole-v0", "kwargs": {"every": 40}}})
    assert train(config) == 0
    summary = read_summary(only_run_dir(runs_dir))
    assert summary["env_errors"] > 0 and summary["episode_return_mean"] is not None
    closing = capsys.readouterr().err.split("rlfarm train: ran its budget")[-1]  # the closing block
    assert f"{summary['env_errors']} env errors" in closing and "training went on" in closing
    state = read_checkpoint(summary["last_checkpoint"])["learner"]
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert all(torch.isfinite(state["normalizer"][k]).all() for k in ("mean", "var"))
