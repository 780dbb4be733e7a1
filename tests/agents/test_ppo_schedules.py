"""PPO's schedules and early stop: algo.anneal_clip, algo.target_kl."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from rlfarm import agents

OBS = spaces.Box(-np.inf, np.inf, (4,), np.float32)


def fragment(rng, steps=16, envs=8):
    frag = agents.Fragment.allocate(steps, envs, (4,), (), np.int64)
    frag.obs[:] = rng.normal(size=frag.obs.shape)
    frag.actions[:] = rng.integers(0, 2, size=frag.actions.shape)
    frag.logp[:] = -0.7
    frag.values[:] = rng.normal(size=(steps, envs))
    frag.rewards[:] = rng.normal(size=(steps, envs))
    return frag


@pytest.mark.parametrize("anneal_clip", [True, False])
def test_clip_range_anneals_linearly_to_zero_only_when_asked(anneal_clip):
    rng = np.random.default_rng(0)
    cfg = agents.AlgoConfig(clip_coef=0.2, anneal_clip=anneal_clip, anneal_lr=False)
    learner = agents.make_learner(OBS, spaces.Discrete(2), algo_cfg=cfg, total_env_steps=4 * 128,
                                  device="cpu", seed=0)
    clips = [learner.update([fragment(rng)])["learner/clip_range"] for _ in range(4)]
    expected = [0.2, 0.15, 0.1, 0.05] if anneal_clip else [0.2] * 4
    np.testing.assert_allclose(clips, expected, rtol=1e-6)


def test_the_annealed_clip_range_is_the_one_the_loss_uses():
    """Behaviour log-probs of -0.7 against a near-uniform policy's -0.69: ratios within 2% of 1.
    At clip 0.2 almost none is clipped; at the end of the run (clip 0) every one is."""
    rng = np.random.default_rng(1)
    cfg = agents.AlgoConfig(anneal_clip=True, anneal_lr=False, epochs=1, minibatches=1)
    learner = agents.make_learner(OBS, spaces.Discrete(2), algo_cfg=cfg, total_env_steps=128,
                                  device="cpu", seed=0)
    first = learner.update([fragment(rng)])  # consumes the whole budget: the next has clip 0
    last = learner.update([fragment(rng)])
    assert first["learner/clip_range"] == pytest.approx(0.2) and first["losses/clip_fraction"] < 0.05
    assert last["learner/clip_range"] == 0.0 and last["losses/clip_fraction"] > 0.95


def test_target_kl_stops_the_remaining_epochs():
    rng = np.random.default_rng(2)
    frag = fragment(rng)
    epochs = {}
    for target_kl in (None, 1e-9):
        cfg = agents.AlgoConfig(epochs=6, lr=1e-2, target_kl=target_kl)
        learner = agents.make_learner(OBS, spaces.Discrete(2), algo_cfg=cfg, device="cpu", seed=0)
        epochs[target_kl] = learner.update([frag])["learner/epochs"]
    assert epochs == {None: 6.0, 1e-9: 1.0}


@pytest.mark.parametrize("bad", [0, -0.1, "x", True])
def test_target_kl_must_be_null_or_positive(bad):
    with pytest.raises(ValueError, match="target_kl"):
        agents.AlgoConfig(target_kl=bad)
