"""The learner on CUDA: same math as on CPU, one host->device copy, portable checkpoints,
and minibatch steps replayed as CUDA graphs with the same results as eager steps.

The graph tests also run on CPU with the capture emulated (a replay runs the step function
again on the static inputs, which is what the graph's kernels do): that checks, without a GPU,
everything around the capture (warm-up restore, Adam's device scalars, the step count,
the cache by batch shape, the eager fallbacks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlfarm import agents
from rlfarm.agents import cuda_graph
from rlfarm.agents.batch import DeviceStager

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

OBS = spaces.Box(-np.inf, np.inf, (4,), np.float32)


def fragments(seed=0, count=3, steps=16, envs=32, action_space=None):
    action_space = spaces.Discrete(2) if action_space is None else action_space
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        box = isinstance(action_space, spaces.Box)
        fragment = agents.Fragment.allocate(steps, envs + i, (4,), action_space.shape, np.float32 if box else np.int64)
        fragment.obs[:] = rng.normal(1.0, 2.0, size=fragment.obs.shape)
        fragment.actions[:] = rng.normal(size=fragment.actions.shape) if box else rng.integers(0, 2, fragment.actions.shape)
        fragment.logp[:] = -0.7
        fragment.values[:] = rng.normal(size=fragment.values.shape)
        fragment.rewards[:] = rng.normal(size=fragment.rewards.shape)
        fragment.terminated[:] = rng.random(fragment.terminated.shape) < 0.05
        fragment.truncated[:] = (rng.random(fragment.truncated.shape) < 0.05) & ~fragment.terminated
        fragment.final_values[fragment.truncated] = 1.5
        out.append(fragment)
    return out


@pytest.mark.cuda
@needs_cuda
def test_stager_one_copy_matches_concatenation():
    frags = fragments()
    batch = DeviceStager(torch.device("cuda"))(frags)
    joined = agents.Fragment.concat(frags)
    for name in ("obs", "actions", "logp", "values", "rewards", "terminated", "truncated", "final_values"):
        tensor = getattr(batch, name)
        assert tensor.is_cuda
        np.testing.assert_array_equal(tensor.cpu().numpy(), getattr(joined, name))
    # every field is a view into one device buffer: a single allocation, a single copy
    assert len({getattr(batch, n).untyped_storage().data_ptr() for n in ("obs", "rewards", "terminated")}) == 1


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("name", ["ppo", "appo"])
@pytest.mark.parametrize("action_space", [spaces.Discrete(2), spaces.Box(-1, 1, (2,), np.float32)])
def test_cuda_update_matches_cpu(name, action_space):
    # one full-batch minibatch: the permutation order (device-specific RNG) cannot matter
    algo = agents.AlgoConfig(name=name, epochs=1, minibatches=1)
    learners = {dev: agents.make_learner(OBS, action_space, agents.PolicyConfig(), algo, device=dev, seed=3)
                for dev in ("cpu", "cuda")}
    metrics = {dev: learner.update(fragments(action_space=action_space)) for dev, learner in learners.items()}
    for key in ("losses/policy", "losses/value", "losses/entropy"):
        assert metrics["cuda"][key] == pytest.approx(metrics["cpu"][key], rel=1e-4, abs=1e-5)
    cpu, cuda = learners["cpu"].get_weights(), learners["cuda"].get_weights()
    for param in cpu["params"]:
        np.testing.assert_allclose(cuda["params"][param], cpu["params"][param], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cuda["normalizer"]["mean"], cpu["normalizer"]["mean"], rtol=1e-6)


@pytest.mark.cuda
@needs_cuda
def test_auto_picks_cuda_and_checkpoint_moves_to_cpu(tmp_path):
    learner = agents.make_learner(OBS, spaces.Discrete(2), seed=0)
    assert learner.device.type == "cuda"
    learner.update(fragments())
    path = agents.save_checkpoint(tmp_path / "c.pt", learner, {"env_steps": 7})
    on_cpu = agents.make_learner(OBS, spaces.Discrete(2), device="cpu", seed=1)
    assert agents.load_checkpoint(path, on_cpu) == {"env_steps": 7}
    policy = agents.ActingPolicy(OBS, spaces.Discrete(2), seed=0)
    policy.set_weights(learner.get_weights())
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    with torch.no_grad():
        expected = on_cpu.model.value(torch.from_numpy(on_cpu.normalizer.normalize(obs)))
    np.testing.assert_allclose(policy.value(obs), expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
@needs_cuda
def test_large_batch_update_on_cuda():
    learner = agents.make_learner(OBS, spaces.Discrete(2), device="cuda", seed=0)
    metrics = learner.update(fragments(count=4, steps=64, envs=1024))
    assert metrics["perf/learner_samples_per_s"] > 0 and np.isfinite(metrics["losses/value"])


class EmulatedGraphedStep(cuda_graph.GraphedStep):
    """Capture emulated on CPU: a replay runs the step function on the static inputs again."""

    def warm_up(self) -> None:
        for _ in range(cuda_graph.WARMUP_STEPS):
            self.step_fn(*self.inputs)

    def capture(self) -> None:
        return None

    def replay(self) -> torch.Tensor:
        return self.step_fn(*self.inputs)


@pytest.fixture(params=[pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda]), "cpu"])
def graph_device(request, monkeypatch):
    """"cuda": real CUDA graphs; "cpu": the same tests with the capture emulated."""
    if request.param == "cpu":
        monkeypatch.setattr(cuda_graph, "CAPTURE_DEVICE_TYPES", ("cpu",))
        monkeypatch.setattr(cuda_graph, "GraphedStep", EmulatedGraphedStep)
    return request.param


def graphed_and_eager(device, name="ppo", seed=5, **algo):
    """Two learners with the same seed: one replays CUDA graphs, the other runs eagerly."""
    return [agents.make_learner(OBS, spaces.Discrete(2), agents.PolicyConfig(),
                                agents.AlgoConfig(name=name, cuda_graphs=graphs, **algo), device=device, seed=seed)
            for graphs in (True, False)]


def assert_same_weights(graphed, eager):
    ours, theirs = graphed.get_weights(), eager.get_weights()
    for param in theirs["params"]:
        np.testing.assert_allclose(ours["params"][param], theirs["params"][param], rtol=1e-4, atol=1e-5)
    assert graphed.optimizer.steps == eager.optimizer.steps


@pytest.mark.parametrize("name", ["ppo", "appo"])
def test_cuda_graph_update_matches_eager(name, graph_device):
    # 3 fragments of 16 x (32+33+34) envs = 1584 samples: 4 equal minibatches of 396
    graphed, eager = graphed_and_eager(graph_device, name, epochs=2, minibatches=4)
    for seed in range(3):
        batch = fragments(seed=seed)
        metrics = {"graphed": graphed.update(batch), "eager": eager.update(batch)}
        for key in ("losses/policy", "losses/value", "losses/approx_kl", "losses/grad_norm"):
            assert metrics["graphed"][key] == pytest.approx(metrics["eager"][key], rel=1e-3, abs=1e-5)
    assert len(graphed.graphs.graphs) == 1 and eager.graphs is None
    assert_same_weights(graphed, eager)


def test_cuda_graphs_per_batch_size_and_eager_for_uneven_minibatches(graph_device):
    graphed, eager = graphed_and_eager(graph_device, "appo", epochs=1, minibatches=2)
    # 1584, 1040 and 1584 samples (two graphs, the first one reused); then 3 samples, which
    # do not split into 2 equal minibatches, run eagerly
    batches = [fragments(seed=1, count=3), fragments(seed=2, count=2), fragments(seed=3, count=3),
               fragments(seed=4, count=1, envs=1, steps=3)]
    for batch in batches:
        graphed.update(batch)
        eager.update(batch)
    assert len(graphed.graphs.graphs) == 2
    assert_same_weights(graphed, eager)


def test_cuda_graph_follows_a_loaded_checkpoint(graph_device):
    # Loading copies into the tensors the graph holds: updates after a load use the loaded state.
    graphed, eager = graphed_and_eager(graph_device, "ppo", epochs=1, minibatches=4)
    graphed.update(fragments(seed=0))  # captures the graph
    donor = agents.make_learner(OBS, spaces.Discrete(2), agents.PolicyConfig(),
                                agents.AlgoConfig(name="ppo", epochs=1, minibatches=4, cuda_graphs=False),
                                device=graph_device, seed=11)
    for seed in range(3):
        donor.update(fragments(seed=seed + 1))
    for learner in (graphed, eager):
        learner.load_state_dict(donor.state_dict())
        learner.update(fragments(seed=7))
    assert_same_weights(graphed, eager)
