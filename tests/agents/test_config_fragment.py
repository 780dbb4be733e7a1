"""Configs validate with one line naming the field; Fragments keep their layout."""
from __future__ import annotations

import numpy as np
import pytest

from rlfarm.agents import AlgoConfig, Fragment, PolicyConfig


@pytest.mark.parametrize("cls,kwargs,field", [
    (AlgoConfig, {"name": "a2c"}, "name"),
    (AlgoConfig, {"lr": 0.0}, "lr"),
    (AlgoConfig, {"lr": "fast"}, "lr"),
    (AlgoConfig, {"gamma": 1.5}, "gamma"),
    (AlgoConfig, {"epochs": 0}, "epochs"),
    (AlgoConfig, {"minibatches": 2.5}, "minibatches"),
    (AlgoConfig, {"device": "tpu"}, "device"),
    (AlgoConfig, {"vtrace": "yes"}, "vtrace"),
    (AlgoConfig, {"rho_bar": -1.0}, "rho_bar"),
    (PolicyConfig, {"hidden_sizes": []}, "hidden_sizes"),
    (PolicyConfig, {"hidden_sizes": [64, -1]}, "hidden_sizes"),
    (PolicyConfig, {"activation": "sigmoid"}, "activation"),
    (PolicyConfig, {"trunk": "rnn"}, "trunk"),
    (PolicyConfig, {"field_shape": [8]}, "field_shape"),
])
def test_bad_config_names_the_field(cls, kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        cls(**kwargs)


def test_config_defaults_are_valid_and_lists_stay_lists():
    cfg = PolicyConfig(hidden_sizes=(32, 32))
    assert cfg.hidden_sizes == [32, 32] and isinstance(cfg.hidden_sizes, list)
    AlgoConfig(name="appo", vtrace=False)


def make_fragment(steps, envs, version=0, runner=0, fill=0.0):
    fragment = Fragment.allocate(steps, envs, (3,), policy_version=version, runner_id=runner)
    fragment.obs[:] = fill
    fragment.rewards[:] = np.arange(envs, dtype=np.float32) + fill
    fragment.episode_returns = np.array([fill], np.float32)
    fragment.episode_lengths = np.array([int(fill)], np.int32)
    fragment.env_ms = 1.0
    return fragment


def test_fragment_layout_sizes_and_validate():
    fragment = make_fragment(5, 4)
    fragment.validate()
    assert fragment.obs.shape == (6, 4, 3) and fragment.actions.dtype == np.int64
    assert (fragment.horizon, fragment.num_envs, fragment.num_steps) == (5, 4, 20)
    expected = 6 * 4 * 3 * 4 + 20 * 8 + 4 * 20 * 4 + 2 * 20 + 4 + 4
    assert fragment.nbytes == expected
    fragment.logp = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="Fragment.logp"):
        fragment.validate()


def test_concat_joins_along_the_env_axis():
    a, b = make_fragment(5, 2, version=3, runner=0, fill=1.0), make_fragment(5, 3, version=2, runner=1, fill=2.0)
    joined = Fragment.concat([a, b])
    joined.validate()
    assert joined.obs.shape == (6, 5, 3) and joined.num_steps == 25
    np.testing.assert_array_equal(joined.obs[:, :2], a.obs)
    np.testing.assert_array_equal(joined.rewards[:, 2:], b.rewards)
    assert joined.policy_version == 2 and joined.runner_id == -1
    np.testing.assert_array_equal(joined.episode_returns, [1.0, 2.0])
    assert joined.env_ms == 2.0
    with pytest.raises(ValueError, match="differ in length"):
        Fragment.concat([a, make_fragment(4, 2)])


def test_fragment_meta_counts_what_the_fragment_holds():
    from rlfarm.agents import FragmentMeta

    fragment = Fragment.allocate(8, 3, (4,), runner_id=2, policy_version=5, env_ms=1.5, env_errors=1,
                                 episode_returns=np.array([1.0, 2.0], np.float32),
                                 episode_lengths=np.array([7, 9], np.int32))
    meta = FragmentMeta.of(fragment, rss_mb=12.0)
    assert (meta.runner_id, meta.policy_version, meta.horizon, meta.num_steps) == (2, 5, 8, 24)
    assert (meta.env_ms, meta.env_errors, meta.nbytes, meta.rss_mb) == (1.5, 1, fragment.nbytes, 12.0)
    np.testing.assert_array_equal(meta.episode_lengths, [7, 9])
