"""The learning batch is fixed in env steps by the config, whatever the number of runners:
a launcher that fills an allocation (farm.runner_slots) spreads the config's copies over more
runners, and the learner still takes the same env steps per update (docs/scaling.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from rlfarm.cluster import make_farm
from rlfarm.cluster.config import spread_over_slots
from rlfarm.experiments.config import load_config

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "cartpole_ppo.yaml"


@pytest.mark.parametrize("slots", [1, 2, 3, 6, 8, 64, 100])
def test_filling_slots_keeps_the_demo_batch_and_copies(slots):
    written = load_config(DEMO)
    cfg = load_config(DEMO, [f"farm.runner_slots={slots}"])
    copies = written.farm.num_runners * written.env.envs_per_runner
    assert cfg.farm.num_runners * cfg.env.envs_per_runner == copies
    assert cfg.farm.batch_size == copies * written.farm.fragment_length
    assert cfg.farm.fragment_length == written.farm.fragment_length
    assert 1 <= cfg.farm.num_runners <= slots
    assert cfg.farm.num_runners == max(d for d in range(1, slots + 1) if copies % d == 0)


def test_spreading_is_idempotent_and_keeps_an_explicit_batch():
    once = spread_over_slots(2, 48, 16, 4 * 96 * 16, slots=12)
    assert once == (12, 8, 4 * 96 * 16)
    assert spread_over_slots(once[0], once[1], 16, once[2], slots=12) == once
    assert spread_over_slots(3, 10, 16, 0, slots=0) == (3, 10, 0)   # no slots: as written


def test_more_runners_fill_the_same_batch():
    """One update consumes the written batch with 1 runner and with 8 sharing its copies."""
    written = load_config(DEMO)
    copies = written.farm.num_runners * written.env.envs_per_runner
    steps = []
    for slots in (1, 8):
        cfg = load_config(DEMO, [f"farm.runner_slots={slots}", "farm.mode=serial",
                                             "algo.epochs=1", "farm.fragment_length=8"])
        farm = make_farm(cfg.env, cfg.model, cfg.algo, cfg.farm, cfg.seed, 100_000)
        try:
            assert len(farm.runners) == slots
            steps.append(farm.iterate()["env_steps"])
        finally:
            farm.close()
    assert steps == [copies * 8, copies * 8]


def test_rlfarm_scale_says_when_its_batch_grows():
    from rlfarm.experiments.bench.scale import batch_note, sweep_points

    raw = {"env": {"id": "rlfarm/CartPole-v1", "envs_per_runner": 16}, "farm": {"mode": "serial", "fragment_length": 8},
           "stop": {"env_steps": 1000}}
    sweep = type("Sweep", (), {"envs_per_runner": [], "num_learners": [], "nodes": [], "num_runners": [1, 4]})()
    weak = batch_note(sweep_points(raw, sweep))
    assert weak.startswith("rlfarm scale: weak scaling: the batch grows with the point (128 to 512 env steps")
    raw["farm"]["batch_size"] = 512
    assert batch_note(sweep_points(raw, sweep)) == \
        "rlfarm scale: strong scaling: every point learns from 512 env steps per update"
