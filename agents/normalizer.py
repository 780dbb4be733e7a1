"""Running observation mean/variance with the parallel merge of Chan et al. (1979).

The learner owns one. During an update the stats stay frozen (so the learner sees the same
normalization the behaviour policy used for that version); after the update it merges the
batch's moments. The state ships with the weights and lives in checkpoints.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads where a tensor is used, not for the numpy statistics
    import torch


def merge_moments(mean_a, var_a, count_a, mean_b, var_b, count_b):
    """Chan et al.'s pairwise merge of (mean, population var, count) for two sample sets."""
    count = count_a + count_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / count)
    m2 = var_a * count_a + var_b * count_b + delta**2 * (count_a * count_b / count)
    return mean, m2 / count, count


class RunningMeanStd:
    """Per-feature running mean and variance over all observations seen (float64)."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8):
        self.shape = tuple(shape)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.mean = np.zeros(self.shape, np.float64)
        self.var = np.ones(self.shape, np.float64)
        self.count = 1e-4  # a tiny prior, so the first merge is (almost) the batch's own moments

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch [B, *shape]."""
        batch = np.asarray(batch, np.float64).reshape(-1, *self.shape)
        self.update_from_moments(batch.mean(0), batch.var(0), batch.shape[0])

    def update_from_moments(self, mean, var, count) -> None:
        self.mean, self.var, self.count = merge_moments(
            self.mean, self.var, self.count, np.asarray(mean, np.float64), np.asarray(var, np.float64), float(count))

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """(obs - mean) / sqrt(var + eps), clipped, as float32 (numpy reference of `torch_params`)."""
        out = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def torch_params(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 (mean, 1/std) on `device`, for `normalize_torch`."""
        import torch

        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=device)
        inv_std = torch.as_tensor(1.0 / np.sqrt(self.var + self.epsilon), dtype=torch.float32, device=device)
        return mean, inv_std

    def state_dict(self) -> dict:
        """numpy arrays and floats (get_weights ships this; checkpoints convert to tensors)."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": float(self.count),
                "clip": self.clip, "epsilon": self.epsilon}

    def load_state_dict(self, state: dict) -> None:
        mean = np.asarray(state["mean"], np.float64)
        var = np.asarray(state["var"], np.float64)
        if mean.shape != self.shape or var.shape != self.shape:
            raise ValueError(f"normalizer: stats of shape {mean.shape} do not fit observations of shape {self.shape}")
        self.mean, self.var, self.count = mean.copy(), var.copy(), float(state["count"])
        self.clip = float(state.get("clip", self.clip))
        self.epsilon = float(state.get("epsilon", self.epsilon))


def normalize_torch(obs: torch.Tensor, mean: torch.Tensor | None, inv_std: torch.Tensor | None,
                    clip: float) -> torch.Tensor:
    """The same normalization as RunningMeanStd.normalize, on tensors; identity when mean is None."""
    if mean is None:
        return obs
    return ((obs - mean) * inv_std).clamp_(-clip, clip)


def batch_moments(obs: torch.Tensor, feature_ndim: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean, population variance and count of obs [..., *features] over the leading axes
    (computed on obs's device in float64, returned to the host as small arrays)."""
    import torch

    flat = obs.reshape(-1, *obs.shape[obs.ndim - feature_ndim:]).double()
    var, mean = torch.var_mean(flat, dim=0, correction=0)
    return mean.cpu().numpy(), var.cpu().numpy(), flat.shape[0]
