"""Data-parallel learners on gloo: gradients averaged, parameters identical after updates."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")
from ray import cloudpickle  # noqa: E402

from rlfarm.cluster import ddp  # noqa: E402

# The test actor below is defined in this module, which Ray workers cannot import by name.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

STEPS, BATCH, IN, OUT = 5, 64, 4, 2


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.normal(size=(STEPS, BATCH, IN)), dtype=torch.float32)
    y = torch.as_tensor(rng.normal(size=(STEPS, BATCH, OUT)), dtype=torch.float32)
    return x, y


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, sync: bool = False) -> None:
    """Adam with gradient clipping: clipping before the all-reduce would diverge ranks."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(STEPS):
        loss = torch.nn.functional.mse_loss(model(x[step]), y[step])
        optimizer.zero_grad()
        loss.backward()
        if sync:  # where agents/ calls learner.grad_sync
            ddp.average_gradients(model.parameters())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(IN, 16), torch.nn.Tanh(), torch.nn.Linear(16, OUT))


@ray.remote(num_cpus=1)
class TinyLearner:
    def __init__(self, rank: int, world_size: int):
        torch.set_num_threads(1)
        self.rank, self.world_size = rank, world_size
        self.model = _model(seed=100 + rank)  # different init per rank: broadcast must fix it

    def address(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), ddp.free_port()

    def moments(self, master_addr: str, master_port: int):
        ddp.init_group(self.rank, self.world_size, master_addr, master_port, backend="gloo")
        obs = np.random.default_rng(self.rank).normal(size=(100 + 50 * self.rank, 3)) * (1 + self.rank)
        merged = ddp.merge_moments(obs.mean(0), obs.var(0), len(obs))
        ddp.destroy_group()
        return merged

    def train(self, master_addr: str, master_port: int) -> tuple[list[np.ndarray], bool]:
        ddp.init_group(self.rank, self.world_size, master_addr, master_port, backend="gloo")
        ddp.broadcast_tensors_(self.model.parameters())
        x, y = _data(seed=0)
        share = BATCH // self.world_size
        rows = slice(self.rank * share, (self.rank + 1) * share)
        _train(self.model, x[:, rows], y[:, rows], sync=True)
        same = ddp.all_equal(self.model.parameters())
        ddp.destroy_group()
        return [p.detach().numpy().copy() for p in self.model.parameters()], same


@pytest.mark.slow
def test_two_gloo_learners_keep_identical_parameters_equal_to_one_full_batch_learner(ray_local):
    learners = [TinyLearner.remote(rank, 2) for rank in range(2)]
    master_addr, master_port = ray.get(learners[0].address.remote())
    (params0, same0), (params1, same1) = ray.get(
        [learner.train.remote(master_addr, master_port) for learner in learners], timeout=120)
    assert same0 and same1
    for a, b in zip(params0, params1):
        np.testing.assert_array_equal(a, b)

    # Rank 0's initial weights on the whole batch, in one process, take the same steps.
    reference = _model(seed=100)
    x, y = _data(seed=0)
    _train(reference, x, y)
    initial = [p.detach().numpy() for p in _model(seed=100).parameters()]
    for a, ref, init in zip(params0, reference.parameters(), initial):
        assert not np.allclose(a, init)  # the updates did move the parameters
        np.testing.assert_allclose(a, ref.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_share_splits_fragments_evenly():
    items = list(range(8))
    assert ddp.share(items, 0, 2) == [0, 2, 4, 6]
    assert ddp.share(items, 1, 2) == [1, 3, 5, 7]
    assert sorted(ddp.share(items, 0, 4) + ddp.share(items, 1, 4) + ddp.share(items, 2, 4)
                  + ddp.share(items, 3, 4)) == items


@pytest.mark.slow
def test_merge_moments_equals_the_moments_of_all_observations(ray_local):
    learners = [TinyLearner.remote(rank, 2) for rank in range(2)]
    master_addr, master_port = ray.get(learners[0].address.remote())
    (mean0, var0, n0), (mean1, var1, n1) = ray.get(
        [learner.moments.remote(master_addr, master_port) for learner in learners], timeout=120)
    everything = np.concatenate([np.random.default_rng(rank).normal(size=(100 + 50 * rank, 3)) * (1 + rank)
                                 for rank in range(2)])
    assert n0 == n1 == len(everything)
    np.testing.assert_array_equal(mean0, mean1)
    np.testing.assert_array_equal(var0, var1)
    np.testing.assert_allclose(mean0, everything.mean(0), rtol=1e-10)
    np.testing.assert_allclose(var0, everything.var(0), rtol=1e-9)


@pytest.mark.slow
def test_two_farm_learners_stay_identical_through_ppo_updates(ray_local, cartpole):
    from rlfarm.cluster.ray_farm import RayFarm

    cfgs = cartpole(algo="ppo", envs_per_runner=32, num_runners=2, num_learners=2)
    farm = RayFarm(*cfgs, seed=11, total_env_steps=100_000)
    try:
        first = ray.get(farm.weights_ref)
        for _ in range(3):
            result = farm.iterate()
        assert ray.get([learner.parameters_equal.remote() for learner in farm.learners]) == [True, True]
        rank0, rank1 = ray.get([learner.weights.remote() for learner in farm.learners])
    finally:
        farm.close()
    assert rank0["version"] == rank1["version"] == 3
    for name, value in rank0["params"].items():
        np.testing.assert_array_equal(rank1["params"][name], value, err_msg=name)
        assert not np.array_equal(value, first["params"][name]), f"{name} did not change"
    for key, value in rank0["normalizer"].items():  # normalizers merged the same moments
        np.testing.assert_array_equal(np.asarray(rank1["normalizer"][key]), np.asarray(value), err_msg=key)
    assert result["env_steps"] == 3 * 2 * 32 * 32
    assert "system/rss_mb/learner_1" in result
