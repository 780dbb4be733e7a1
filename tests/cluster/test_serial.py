"""SerialFarm: one process drives runners and a learner; the reference for the Ray farm."""
from __future__ import annotations

import numpy as np
import pytest

from rlfarm import agents
from rlfarm.cluster import FarmConfig, make_farm
from rlfarm.cluster.serial import SerialFarm
from rlfarm.envs import EnvConfig

ENV = EnvConfig(id="rlfarm/CartPole-v1", envs_per_runner=8)
MODEL = agents.PolicyConfig(hidden_sizes=[16])


def serial_farm(algo="ppo", seed=0, **farm_fields):
    farm_cfg = FarmConfig(**{"mode": "serial", "num_runners": 2, "fragment_length": 16, **farm_fields})
    return make_farm(ENV, MODEL, agents.AlgoConfig(name=algo, device="cpu", epochs=1, minibatches=2),
                     farm_cfg, seed, 100_000)


def test_make_farm_dispatches_serial_and_rejects_unknown_modes():
    farm = serial_farm()
    assert isinstance(farm, SerialFarm)
    farm.close()
    with pytest.raises(ValueError, match="mode: must be one of serial, ray, got 'nope'"):
        FarmConfig(mode="nope")


@pytest.mark.parametrize("field, value", [("num_runners", 0), ("fragment_length", 1.5), ("max_lag", -1),
                                          ("batch_size", True), ("runner_resources", 1), ("address", "")])
def test_farm_config_validates_itself_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        FarmConfig(**{field: value})


@pytest.mark.parametrize("algo, farm_fields, allowed_lag", [
    ("ppo", {}, 0), ("ppo", {"artificial_lag": 2}, 2), ("appo", {"max_lag": 3}, 3)])
def test_one_staleness_rule_for_both_farms(algo, farm_fields, allowed_lag):
    """PPO drops what is older than the deliberate lag (a restart's or a resume's leftovers),
    APPO what is more than max_lag behind; the Ray farm calls the same method."""
    from rlfarm.cluster.ray_farm import RayFarm

    assert "is_stale" not in vars(RayFarm) and "is_stale" not in vars(SerialFarm)
    with serial_farm(algo=algo, **farm_fields) as farm:
        assert not farm.is_stale(10, 10 + allowed_lag)
        assert farm.is_stale(10, 11 + allowed_lag)


def test_iterate_consumes_one_fragment_per_runner_and_publishes_weights():
    with serial_farm() as farm:
        first = farm.iterate()
        second = farm.iterate()
        assert first["env_steps"] == 2 * 16 * 8 and second["env_steps"] == 2 * 2 * 16 * 8
        for key in ("episode_returns", "episode_lengths", "runner_restarts", "dropped_fragments",
                    "env_errors", "losses/policy", "losses/value", "losses/entropy", "losses/approx_kl",
                    "perf/learner_samples_per_s", "perf/sample_ms", "perf/update_ms"):
            assert key in second, key
        assert farm.learner.version == 2
        assert all(runner.version == 2 for runner in farm.runners)


def test_batch_size_gathers_several_fragments_round_robin():
    with serial_farm(num_runners=1, batch_size=3 * 16 * 8) as farm:
        assert farm.iterate()["env_steps"] == 3 * 16 * 8


def test_same_seed_same_learning_curve():
    def run(seed):
        with serial_farm(seed=seed) as farm:
            return [farm.iterate()["losses/value"] for _ in range(3)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_appo_drops_fragments_beyond_max_lag():
    with serial_farm(algo="appo", artificial_lag=2, max_lag=1, num_runners=1) as farm:
        for _ in range(6):
            result = farm.iterate()
        assert result["dropped_fragments"] > 0
        assert farm.learner.version == 6


def test_checkpoint_restores_counters_and_learner(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    with serial_farm() as farm:
        for _ in range(3):
            farm.iterate()
        farm.save_checkpoint(path, {"note": "hello"})
        weights = farm.learner.get_weights()
    with serial_farm(seed=1) as restored:
        extra = restored.load_checkpoint(path)
        assert extra["note"] == "hello"
        assert restored.env_steps == 3 * 2 * 16 * 8 and restored.iterations == 3
        assert restored.learner.version == 3
        for name, value in weights["params"].items():
            np.testing.assert_array_equal(restored.learner.get_weights()["params"][name], value)
        assert all(runner.version == 3 for runner in restored.runners)  # republished
        assert restored.iterate()["env_steps"] == 4 * 2 * 16 * 8


def test_one_torch_thread_parser(monkeypatch):
    from rlfarm.cluster.learner import torch_threads

    monkeypatch.delenv("RLFARM_TORCH_THREADS", raising=False)
    assert torch_threads() == 1
    monkeypatch.setenv("RLFARM_TORCH_THREADS", " 3 ")
    assert torch_threads() == 3
    for bad in ("0", "two", "1.5"):
        monkeypatch.setenv("RLFARM_TORCH_THREADS", bad)
        with pytest.raises(ValueError, match=f"RLFARM_TORCH_THREADS: expected an integer >= 1, got '{bad}'"):
            torch_threads()
