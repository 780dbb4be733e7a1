"""The replay buffer: transitions from fragments against a per-transition reference walk,
both autoreset modes of gymnasium's own vector envs, the ring, the memory estimate."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from rlfarm.agents.fragment import Fragment
from rlfarm.agents.replay import ReplayBuffer, fragment_transitions, replay_bytes


def random_fragment(rng, steps=9, envs=4, mode="same_step", drop_some_finals=True):
    """Random rewards, terminations and truncations; every obs distinct (its value says where it is)."""
    obs = rng.standard_normal((steps + 1, envs, 2)).astype(np.float32)
    terminated = rng.random((steps, envs)) < 0.15
    truncated = rng.random((steps, envs)) < 0.15
    fragment = Fragment(obs=obs, actions=rng.integers(0, 3, (steps, envs)), logp=np.zeros((steps, envs), np.float32),
                        values=np.zeros((steps, envs), np.float32),
                        rewards=rng.standard_normal((steps, envs)).astype(np.float32),
                        terminated=terminated, truncated=truncated, final_values=np.zeros((steps, envs), np.float32),
                        autoreset_mode=mode)
    if mode == "same_step":
        cut = np.flatnonzero((truncated & ~terminated).ravel())
        if drop_some_finals:  # some truncations lost their final obs (a reset after a bad state)
            cut = cut[rng.random(len(cut)) < 0.7]
        fragment.final_index = cut.astype(np.int64)
        fragment.final_obs = (100.0 + rng.standard_normal((len(cut), 2))).astype(np.float32)
    else:
        fragment.done_before = rng.random(envs) < 0.3
    fragment.validate()
    return fragment


def reference_transitions(fragment, gamma, n_step):
    """One transition at a time, in plain Python (the definition the module docstring gives)."""
    steps, envs = fragment.rewards.shape
    term, trunc = fragment.terminated, fragment.truncated
    finals = {}
    if fragment.final_obs is not None:
        for row, index in enumerate(fragment.final_index):
            finals[divmod(int(index), envs)] = fragment.final_obs[row]

    def skipped(t, n):
        if fragment.autoreset_mode == "next_step":
            before = fragment.done_before[n] if t == 0 else (term[t - 1, n] or trunc[t - 1, n])
            return bool(before)
        return bool(trunc[t, n] and not term[t, n] and (t, n) not in finals)

    out = []
    for t in range(steps):
        for n in range(envs):
            if skipped(t, n):
                continue
            total, m, tt = 0.0, 0, t
            while True:
                total += gamma**m * float(fragment.rewards[tt, n])
                m += 1
                if term[tt, n]:
                    discount, successor = 0.0, None
                    break
                if trunc[tt, n]:
                    discount = gamma**m
                    successor = finals[(tt, n)] if fragment.autoreset_mode == "same_step" else fragment.obs[tt + 1, n]
                    break
                if m == n_step or tt + 1 == steps or skipped(tt + 1, n):
                    discount, successor = gamma**m, fragment.obs[tt + 1, n]
                    break
                tt += 1
            out.append((fragment.obs[t, n], int(fragment.actions[t, n]), total, successor, discount))
    return out


@pytest.mark.parametrize("mode", ["same_step", "next_step"])
@pytest.mark.parametrize("n_step", [1, 3])
def test_transitions_match_the_reference_walk(mode, n_step):
    rng = np.random.default_rng(7)
    for _ in range(20):
        fragment = random_fragment(rng, mode=mode)
        got = fragment_transitions(fragment, 0.9, n_step)
        want = reference_transitions(fragment, 0.9, n_step)
        assert len(got["rewards"]) == len(want)
        for i, (obs, action, reward, successor, discount) in enumerate(want):
            np.testing.assert_array_equal(got["obs"][i], obs)
            assert got["actions"][i] == action
            assert got["rewards"][i] == pytest.approx(reward, rel=1e-5, abs=1e-5)
            assert got["discounts"][i] == pytest.approx(discount, rel=1e-6)
            if successor is not None:  # after a termination the successor is never read
                np.testing.assert_array_equal(got["next_obs"][i], successor)


def gym_fragment(mode: AutoresetMode, steps=40, envs=3, seed=0):
    """A fragment from gymnasium's SyncVectorEnv (Pendulum cut at 7 steps: truncations only)."""
    env = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=7)] * envs,
                                   autoreset_mode=mode)
    env.action_space.seed(seed)
    obs = np.zeros((steps + 1, envs, 3), np.float32)
    actions = np.zeros((steps, envs, 1), np.float32)
    rewards = np.zeros((steps, envs), np.float32)
    terminated = np.zeros((steps, envs), bool)
    truncated = np.zeros((steps, envs), bool)
    obs[0] = env.reset(seed=seed)[0]
    finals, index = [], []
    rng = np.random.default_rng(seed)
    for t in range(steps):
        actions[t] = rng.uniform(-2, 2, (envs, 1))
        obs[t + 1], rewards[t], terminated[t], truncated[t], infos = env.step(actions[t])
        if mode is AutoresetMode.SAME_STEP and "final_obs" in infos:
            for n in np.flatnonzero(infos["_final_obs"]):
                finals.append(infos["final_obs"][n])
                index.append(t * envs + n)
    fragment = Fragment(obs=obs, actions=actions, logp=np.zeros((steps, envs), np.float32),
                        values=np.zeros((steps, envs), np.float32), rewards=rewards, terminated=terminated,
                        truncated=truncated, final_values=np.zeros((steps, envs), np.float32),
                        autoreset_mode="same_step" if mode is AutoresetMode.SAME_STEP else "next_step")
    if finals:
        fragment.final_obs, fragment.final_index = np.array(finals, np.float32), np.array(index, np.int64)
    fragment.validate()
    return fragment


@pytest.mark.parametrize("n_step", [1, 3])
def test_both_autoreset_modes_give_the_same_transitions(n_step):
    """The same seeded episodes stepped by gymnasium under each autoreset mode: the next_step
    run has extra reset steps, but the transitions (truncations bootstrapping from the final
    obs, never the next episode's first) are the same."""
    same = fragment_transitions(gym_fragment(AutoresetMode.SAME_STEP, steps=42), 0.9, n_step)
    # next_step spends one extra step per episode end: 42 same-step steps = 6 episodes of 7.
    nxt = fragment_transitions(gym_fragment(AutoresetMode.NEXT_STEP, steps=42 + 5), 0.9, n_step)
    assert len(same["rewards"]) == 42 * 3
    # The action streams differ after a reset step, so compare the first episode of each copy.
    for name in ("obs", "rewards", "next_obs", "discounts"):
        np.testing.assert_allclose(same[name][:7 * 3], nxt[name][:7 * 3], rtol=1e-6)
    last_of_episode = same["next_obs"][6 * 3:7 * 3]  # the final obs, not a fresh reset
    assert not np.allclose(last_of_episode, same["obs"][7 * 3:8 * 3])


def test_ring_keeps_the_newest_and_samples_only_filled_rows():
    rng = np.random.default_rng(1)
    buffer = ReplayBuffer(50, (2,), (), torch.int64, "cpu", gamma=0.9)
    added = []
    for _ in range(8):
        fragment = random_fragment(rng, steps=5, envs=3, mode="next_step")
        added.append(fragment_transitions(fragment, 0.9)["obs"])
        assert buffer.add(fragment) == len(added[-1])
    everything = np.concatenate(added)
    assert buffer.added == len(everything)
    assert buffer.size == min(50, len(everything))
    held = buffer.tensors["obs"].numpy()
    newest = everything[-buffer.size:]
    # the ring's rows, read from the oldest position on, are the newest transitions in order
    np.testing.assert_array_equal(np.roll(held, -buffer.position, axis=0)[-buffer.size:], newest)
    sample = buffer.sample(64, torch.Generator().manual_seed(0))
    assert sample.obs.shape == (64, 2) and sample.actions.dtype == torch.int64
    assert buffer.nbytes == replay_bytes(50, (2,), (), 8)


def test_a_block_larger_than_the_ring_keeps_its_newest_rows():
    rng = np.random.default_rng(2)
    fragment = random_fragment(rng, steps=20, envs=4, mode="next_step")
    buffer = ReplayBuffer(16, (2,), (), torch.int64, "cpu", gamma=0.9)
    buffer.add(fragment)
    np.testing.assert_array_equal(buffer.tensors["obs"].numpy(), fragment_transitions(fragment, 0.9)["obs"][-16:])


def test_state_dict_round_trip():
    rng = np.random.default_rng(3)
    buffer = ReplayBuffer(30, (2,), (), torch.int64, "cpu", gamma=0.9)
    for _ in range(3):
        buffer.add(random_fragment(rng, mode="next_step"))
    other = ReplayBuffer(30, (2,), (), torch.int64, "cpu", gamma=0.9)
    other.load_state_dict(buffer.state_dict())
    assert (other.position, other.size, other.added) == (buffer.position, buffer.size, buffer.added)
    for name, tensor in buffer.tensors.items():
        torch.testing.assert_close(other.tensors[name][:other.size], tensor[:buffer.size])
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(31, (2,), (), torch.int64, "cpu", gamma=0.9).load_state_dict(buffer.state_dict())


def test_concat_renumbers_final_rows():
    rng = np.random.default_rng(4)
    parts = [random_fragment(rng, steps=6, envs=envs, drop_some_finals=False) for envs in (2, 3)]
    joined = Fragment.concat(parts)
    joined.validate()
    want = np.concatenate([fragment_transitions(p, 0.9, 2)["next_obs"] for p in parts])
    got = fragment_transitions(joined, 0.9, 2)["next_obs"]
    assert sorted(map(tuple, want.round(5))) == sorted(map(tuple, got.round(5)))
