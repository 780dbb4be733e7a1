"""Checkpoints: a full round trip, weights_only loading, clear errors, an untouched learner."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlfarm import agents
from rlfarm.agents.checkpoint import read_checkpoint

OBS = spaces.Box(-np.inf, np.inf, (4,), np.float32)


def trained_learner(seed=0, obs_space=OBS, action_space=None, hidden=(16,), updates=2, name="ppo"):
    action_space = spaces.Discrete(2) if action_space is None else action_space
    rng = np.random.default_rng(seed)
    learner = agents.make_learner(obs_space, action_space, agents.PolicyConfig(hidden_sizes=list(hidden)),
                                  agents.AlgoConfig(name=name), total_env_steps=10_000, device="cpu", seed=seed)
    for _ in range(updates):
        fragment = agents.Fragment.allocate(8, 4, obs_space.shape)
        fragment.obs[:] = rng.normal(3.0, 2.0, size=fragment.obs.shape)
        fragment.actions[:] = rng.integers(0, 2, size=fragment.actions.shape)
        fragment.rewards[:] = rng.normal(size=(8, 4))
        learner.update([fragment])
    return learner


def snapshot(learner):
    weights = learner.get_weights()
    return weights, learner.optimizer.state_dict(), learner.version, learner.env_steps_consumed


def assert_same_state(a, b):
    (wa, oa, va, sa), (wb, ob, vb, sb) = a, b
    assert (va, sa) == (vb, sb)
    for name in wa["params"]:
        np.testing.assert_array_equal(wa["params"][name], wb["params"][name])
    np.testing.assert_array_equal(wa["normalizer"]["mean"], wb["normalizer"]["mean"])
    np.testing.assert_array_equal(wa["normalizer"]["var"], wb["normalizer"]["var"])
    assert wa["normalizer"]["count"] == wb["normalizer"]["count"]
    for x, y in zip(oa["exp_avg"], ob["exp_avg"]):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert oa["steps"] == ob["steps"]


def test_round_trip_restores_everything(tmp_path):
    source = trained_learner(seed=0, updates=3)
    path = agents.save_checkpoint(tmp_path / "ckpt" / "last.pt", source, {"env_steps": 1234, "wall_s": 5.5})
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind
    torch.manual_seed(99)
    np.random.seed(99)
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(99)
    np.random.seed(99)
    agents.save_checkpoint(tmp_path / "rng.pt", source, {})
    target = trained_learner(seed=5, updates=1)
    torch.manual_seed(0)
    np.random.seed(0)
    extra = agents.load_checkpoint(tmp_path / "rng.pt", target)
    assert extra == {}
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected_torch.numpy())
    np.testing.assert_array_equal(np.random.rand(3), expected_numpy)
    assert agents.load_checkpoint(path, target) == {"env_steps": 1234, "wall_s": 5.5}
    assert_same_state(snapshot(source), snapshot(target))
    # and both continue identically (minibatch generator restored too)
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    for learner, rng in ((source, rng_a), (target, rng_b)):
        fragment = agents.Fragment.allocate(8, 4, (4,))
        fragment.obs[:] = rng.normal(size=fragment.obs.shape)
        fragment.rewards[:] = 1.0
        learner.update([fragment])
    assert_same_state(snapshot(source), snapshot(target))


def test_file_loads_with_weights_only(tmp_path):
    path = agents.save_checkpoint(tmp_path / "c.pt", trained_learner(), {"note": "x", "curve": [1, 2]})
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "rlfarm-checkpoint" and "algo_config" in payload["learner"]
    assert payload["learner"]["describe"]["policy_config"]["hidden_sizes"] == [16]


@pytest.mark.parametrize("make_other,message", [
    (lambda: trained_learner(obs_space=spaces.Box(-1, 1, (5,), np.float32)), "observation shape differs"),
    (lambda: trained_learner(action_space=spaces.Discrete(3)), "action space differs"),
    (lambda: trained_learner(hidden=(32,)), "model sizes differ"),
    (lambda: trained_learner(hidden=(16, 16)), "model layers differ"),
    (lambda: trained_learner(name="appo"), "algorithm differs"),
])
def test_mismatched_checkpoint_is_refused_and_learner_untouched(tmp_path, make_other, message):
    path = agents.save_checkpoint(tmp_path / "other.pt", make_other(), {})
    learner = trained_learner()
    before = snapshot(learner)
    with pytest.raises(agents.CheckpointError, match=f"^checkpoint .*other.pt: from a different model: {message}"):
        agents.load_checkpoint(path, learner)
    assert_same_state(before, snapshot(learner))


@pytest.mark.parametrize("damage, reason", [
    ("truncate", "truncated"), ("empty", "empty (truncated)"),
    ("garbage", "not an rlfarm checkpoint (not a torch file)"), ("missing", "no such file"),
    ("pickle", "not an rlfarm checkpoint (it holds pickled Python objects"),
    ("other torch file", "not an rlfarm checkpoint (a torch file with other contents)")])
def test_corrupt_checkpoint_is_named_once_with_a_plain_reason(tmp_path, damage, reason):
    path = agents.save_checkpoint(tmp_path / "c.pt", trained_learner(), {})
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "missing":
        path = tmp_path / "nope.pt"
    elif damage == "pickle":  # a pickle that would run code: weights_only refuses it
        torch.save({"format": "rlfarm-checkpoint", "evil": np.random.default_rng(0)}, path)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    learner = trained_learner()
    before = snapshot(learner)
    with pytest.raises(agents.CheckpointError) as caught:
        agents.load_checkpoint(path, learner)
    message = str(caught.value)
    assert message.startswith(f"checkpoint {path}: {reason}") and message.count(path.name) == 1
    assert "weights_only" not in message
    assert_same_state(before, snapshot(learner))


def test_checkpoint_error_survives_pickling(tmp_path):
    """Ray carries a learner actor's CheckpointError to the driver by pickling it."""
    import pickle

    error = pickle.loads(pickle.dumps(agents.CheckpointError(tmp_path / "c.pt", "truncated")))
    assert str(error) == f"checkpoint {tmp_path / 'c.pt'}: truncated" and error.reason == "truncated"


def test_malformed_learner_section_is_refused(tmp_path):
    path = agents.save_checkpoint(tmp_path / "c.pt", trained_learner(), {})
    payload = read_checkpoint(path)
    del payload["learner"]["optimizer"]["exp_avg"]
    torch.save(payload, path)
    with pytest.raises(agents.CheckpointError, match="damaged learner state"):
        agents.load_checkpoint(path, trained_learner())


def test_checkpoint_from_another_device_type_reseeds_the_minibatch_generator(tmp_path):
    path = agents.save_checkpoint(tmp_path / "c.pt", trained_learner(), {})
    payload = read_checkpoint(path)
    payload["learner"]["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA Philox state
    payload["learner"]["generator_device"] = "cuda"
    torch.save(payload, path)
    a, b = trained_learner(seed=3), trained_learner(seed=4)
    agents.load_checkpoint(path, a)
    agents.load_checkpoint(path, b)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
