"""Running mean/var: Chan's merge equals the moments of the whole data."""
from __future__ import annotations

import numpy as np
import torch

from rlfarm.agents.normalizer import RunningMeanStd, batch_moments, normalize_torch


def test_parallel_merge_equals_moments_of_all_data():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(loc=i, scale=1 + i, size=(n, 3)) for i, n in enumerate((5, 100, 1, 37))]
    stats = RunningMeanStd((3,))
    stats.count = 0.0  # no prior: exact moments
    stats.mean[:] = 0
    stats.var[:] = 0
    for chunk in chunks:
        stats.update(chunk)
    data = np.concatenate(chunks)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-10)
    assert stats.count == len(data)


def test_torch_normalization_matches_numpy_and_clips():
    stats = RunningMeanStd((2,), clip=5.0)
    stats.update(np.random.default_rng(1).normal([10, -3], [2, 0.1], size=(500, 2)))
    obs = np.array([[10, -3], [1000, -3], [10, -1000]], np.float32)
    mean, inv_std = stats.torch_params("cpu")
    ours = normalize_torch(torch.from_numpy(obs), mean, inv_std, stats.clip).numpy()
    np.testing.assert_allclose(ours, stats.normalize(obs), rtol=1e-5, atol=1e-5)
    assert ours.max() == 5.0 and ours.min() == -5.0


def test_batch_moments_over_leading_axes():
    obs = torch.randn(7, 5, 2, 3)
    mean, var, count = batch_moments(obs, feature_ndim=2)
    flat = obs.reshape(-1, 2, 3).double().numpy()
    assert count == 35 and mean.shape == (2, 3)
    np.testing.assert_allclose(mean, flat.mean(0), atol=1e-12)
    np.testing.assert_allclose(var, flat.var(0), atol=1e-12)


def test_state_dict_round_trip():
    a = RunningMeanStd((4,))
    a.update(np.random.default_rng(2).normal(size=(50, 4)))
    b = RunningMeanStd((4,))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.var, b.var)
    assert a.count == b.count
