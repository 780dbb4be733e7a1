"""SAC and DQN: targets against hand-computed numbers, the squashed Gaussian against
torch.distributions, the numpy acting copies against the torch nets, the update-to-data
ratio, the finite-update guard, and the checkpoint state."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlfarm import agents
from rlfarm.agents.offpolicy_acting import runner_epsilon
from rlfarm.agents.replay import ReplaySample

BOX = spaces.Box(low=np.array([-2.0, 0.0], np.float32), high=np.array([2.0, 1.0], np.float32))
OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)
DISCRETE = spaces.Discrete(3)
POLICY = agents.PolicyConfig(hidden_sizes=[16, 16], activation="relu")


def sac(**overrides):
    cfg = agents.AlgoConfig(name="sac", device="cpu", learning_starts=8, batch_size=8, **overrides)
    return agents.make_learner(OBS, BOX, POLICY, cfg, seed=0)


def dqn(**overrides):
    cfg = agents.AlgoConfig(name="dqn", device="cpu", learning_starts=8, batch_size=8, **overrides)
    return agents.make_learner(OBS, DISCRETE, POLICY, cfg, total_env_steps=1000, seed=0)


def fragment(action_space, steps=4, envs=2, seed=0, reward=None):
    rng = np.random.default_rng(seed)
    if isinstance(action_space, spaces.Box):
        actions = rng.uniform(action_space.low, action_space.high, (steps, envs, 2)).astype(np.float32)
    else:
        actions = rng.integers(0, action_space.n, (steps, envs))
    rewards = rng.standard_normal((steps, envs)).astype(np.float32) if reward is None else np.full((steps, envs), reward, np.float32)
    zeros = np.zeros((steps, envs), np.float32)
    return agents.Fragment(obs=rng.standard_normal((steps + 1, envs, 3)).astype(np.float32), actions=actions,
                           logp=zeros, values=zeros, rewards=rewards, terminated=np.zeros((steps, envs), bool),
                           truncated=np.zeros((steps, envs), bool), final_values=zeros)


def test_squashed_gaussian_log_prob_matches_torch_distributions():
    learner = sac()
    actor = learner.actor
    obs = torch.randn(64, 3)
    generator = torch.Generator().manual_seed(3)
    actions, logp = actor(obs, generator)
    features = actor.trunk(obs)
    mean, std = actor.mean(features), actor.log_std(features).clamp(-5, 2).exp()
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, std),
        [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(actor.centre, actor.scale)])
    inside = (actions - actor.centre).abs() < 0.999 * actor.scale  # atanh is exact away from the bounds
    rows = inside.all(-1)
    torch.testing.assert_close(logp[rows], reference.log_prob(actions[rows]).sum(-1), rtol=1e-4, atol=1e-4)
    assert bool(((actions >= torch.tensor(BOX.low)) & (actions <= torch.tensor(BOX.high))).all())


def test_sac_critic_target_is_the_soft_bellman_backup():
    """y = r + d * (min(Q'1, Q'2) - alpha * log pi), with the nets replaced by fixed numbers."""
    learner = sac(init_alpha=0.5, autotune_alpha=False, lr=1e-12)
    batch = ReplaySample(obs=torch.zeros(2, 3), actions=torch.zeros(2, 2), rewards=torch.tensor([1.0, -1.0]),
                         next_obs=torch.zeros(2, 3), discounts=torch.tensor([0.9, 0.0]))
    learner.actor.forward = lambda obs, generator=None: (torch.zeros(len(obs), 2, requires_grad=True),
                                                         torch.tensor([-1.0, 2.0]))
    learner.critic_target.forward = lambda obs, actions: (torch.tensor([3.0, 5.0]), torch.tensor([4.0, 1.0]))
    seen = {}

    def critic(obs, actions):
        out = (torch.zeros(len(obs), requires_grad=True) + 0.0, torch.zeros(len(obs), requires_grad=True) + 0.0)
        seen.setdefault("calls", []).append(out)
        return out
    learner.critic.forward = critic
    stats = learner.gradient_step(batch)
    # row 0: 1 + 0.9 * (min(3, 4) - 0.5 * -1) = 4.15; row 1: terminated, -1
    expected_target = torch.tensor([1.0 + 0.9 * (3.0 + 0.5), -1.0])
    assert stats[0].item() == pytest.approx(float((expected_target**2).mean()), rel=1e-6)  # Q = 0: loss = mean y^2


def test_sac_temperature_rises_when_entropy_is_below_target():
    learner = sac(init_alpha=1.0, lr=0.1, target_entropy=100.0)  # any policy's entropy is below 100
    for seed in range(3):
        learner.update([fragment(BOX, steps=8, seed=seed)])
    assert learner.log_alpha.item() > 0.0
    learner = sac(init_alpha=1.0, lr=0.1, target_entropy=-100.0)
    for seed in range(3):
        learner.update([fragment(BOX, steps=8, seed=seed)])
    assert learner.log_alpha.item() < 0.0


def test_double_dqn_target_values_the_online_argmax_with_the_target_net():
    learner = dqn(lr=1e-12)
    batch = ReplaySample(obs=torch.zeros(2, 3), actions=torch.tensor([0, 2]), rewards=torch.tensor([1.0, 2.0]),
                         next_obs=torch.zeros(2, 3), discounts=torch.tensor([0.5, 0.0]))
    online_next = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 9.0]])
    calls = []

    def online(obs):
        calls.append(obs)
        if len(calls) == 1:  # the target's argmax pass (no grad)
            return online_next
        return torch.zeros(len(obs), 3, requires_grad=True) + 0.0
    learner.q.forward = online
    learner.q_target.forward = lambda obs: torch.tensor([[10.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    stats = learner.gradient_step(batch)
    # row 0: online picks action 1, the target values it 2 (not max 10): y = 1 + 0.5 * 2 = 2
    # row 1: terminated: y = 2. Q = 0, Huber(2) = 2 - 0.5 = 1.5 each.
    assert stats[0].item() == pytest.approx(1.5)



def test_vanilla_dqn_target_is_the_target_nets_max():
    """algo.double_q false: y = r + d * max_b Q'(s', b), SB3's DQN target."""
    learner = dqn(lr=1e-12, double_q=False)
    batch = ReplaySample(obs=torch.zeros(2, 3), actions=torch.tensor([0, 2]), rewards=torch.tensor([1.0, 2.0]),
                         next_obs=torch.zeros(2, 3), discounts=torch.tensor([0.5, 0.0]))
    learner.q.forward = lambda obs: torch.zeros(len(obs), 3, requires_grad=True) + 0.0
    learner.q_target.forward = lambda obs: torch.tensor([[10.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    stats = learner.gradient_step(batch)
    # row 0: y = 1 + 0.5 * 10 = 6, Huber(6) = 5.5; row 1: terminated, y = 2, Huber(2) = 1.5
    assert stats[0].item() == pytest.approx(3.5)

def test_dueling_head_is_value_plus_centred_advantage():
    learner = dqn(dueling=True)
    obs = torch.randn(5, 3)
    features = learner.q.trunk(obs)
    advantage = learner.q.head(features)
    expected = learner.q.value(features) + advantage - advantage.mean(-1, keepdim=True)
    torch.testing.assert_close(learner.q(obs), expected)


def test_epsilon_schedule_and_apex_spread():
    learner = dqn(epsilon_start=1.0, epsilon_end=0.1, epsilon_fraction=0.5)
    assert learner.epsilon() == 1.0
    learner.env_steps_consumed = 250  # half way through the 500-step decay
    assert learner.epsilon() == pytest.approx(0.55)
    learner.env_steps_consumed = 900
    assert learner.epsilon() == pytest.approx(0.1)
    assert runner_epsilon(0.4, 0, 8) == pytest.approx(0.4)
    assert runner_epsilon(0.4, 7, 8) == pytest.approx(0.4**8)
    assert runner_epsilon(0.4, 0, 1) == 0.4


@pytest.mark.parametrize("dueling", [False, True])
def test_numpy_dqn_acting_is_greedy_on_the_torch_q(dueling):
    learner = dqn(dueling=dueling)
    learner.gradient_steps = learner.algo_cfg.publish_every  # past version 0 (the random start)
    acting = agents.make_acting_policy(OBS, DISCRETE, POLICY, seed=0, algo_cfg=learner.algo_cfg)
    acting.set_weights(learner.get_weights())
    obs = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    greedy, _, _ = acting.act(obs, deterministic=True)
    q = learner.q(torch.from_numpy(obs)).detach().numpy()
    np.testing.assert_allclose(acting.q_values(obs), q, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(greedy, q.argmax(-1))
    acting.epsilon = 0.5
    explored, _, _ = acting.act(np.repeat(obs[:1], 4000, 0))
    assert 0.6 < np.mean(explored == greedy[0]) < 0.73  # 1 - 0.5 + 0.5 / 3 = 0.667


def test_numpy_sac_acting_matches_the_torch_actor():
    learner = sac()
    learner.gradient_steps = 1
    acting = agents.make_acting_policy(OBS, BOX, POLICY, seed=0, algo_cfg=learner.algo_cfg)
    acting.set_weights(learner.get_weights())
    obs = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    mode, _, _ = acting.act(obs, deterministic=True)
    np.testing.assert_allclose(mode, learner.actor.deterministic(torch.from_numpy(obs)).detach().numpy(), rtol=1e-5, atol=1e-5)
    # Sampled actions: the same squashed distribution as torch's (moments of one obs's actions).
    one = np.repeat(obs[:1], 20000, 0)
    sampled, _, _ = acting.act(one)
    reference, _ = learner.actor(torch.from_numpy(one), torch.Generator().manual_seed(0))
    np.testing.assert_allclose(sampled.mean(0), reference.mean(0).detach().numpy(), atol=0.03)
    np.testing.assert_allclose(sampled.std(0), reference.std(0).detach().numpy(), atol=0.03)
    assert (sampled >= BOX.low).all() and (sampled <= BOX.high).all()


def test_acting_is_uniform_before_the_first_gradient_step():
    learner = sac()
    acting = agents.make_acting_policy(OBS, BOX, POLICY, seed=0, algo_cfg=learner.algo_cfg)
    acting.set_weights(learner.get_weights())
    actions, _, _ = acting.act(np.zeros((20000, 3), np.float32))
    np.testing.assert_allclose(actions.mean(0), [0.0, 0.5], atol=0.03)
    np.testing.assert_allclose(actions.std(0), [4 / math.sqrt(12), 1 / math.sqrt(12)], atol=0.03)


def test_ppo_weights_are_refused_by_an_offpolicy_runner():
    learner = sac()
    acting = agents.make_acting_policy(OBS, BOX, POLICY, seed=0, algo_cfg=learner.algo_cfg)
    ppo = agents.make_learner(OBS, BOX, POLICY, agents.AlgoConfig(device="cpu"), seed=0)
    with pytest.raises(ValueError, match="this runner acts for sac"):
        acting.set_weights(ppo.get_weights())


@pytest.mark.parametrize("ratio", [0.25, 1.0, 3.0])
def test_update_to_data_ratio_is_exact(ratio):
    """Gradient steps = ratio x env steps that arrived once the buffer held learning_starts."""
    learner = sac(updates_per_step=ratio)
    consumed_after_warm = 0
    for seed, steps in enumerate([3, 5, 7, 2, 9, 4]):
        before = learner.replay.size
        learner.update([fragment(BOX, steps=steps, envs=2, seed=seed)])
        warm = learner.algo_cfg.learning_starts
        consumed_after_warm += steps * 2 if before >= warm else max(learner.replay.size - warm, 0)
        assert learner.gradient_steps == math.floor(ratio * consumed_after_warm + 1e-9)


def test_a_non_finite_update_is_rolled_back():
    learner = dqn()
    learner.update([fragment(DISCRETE, steps=8, seed=0)])
    before = {k: v.clone() for k, v in learner.q.state_dict().items()}
    steps_before = learner.gradient_steps
    metrics = learner.update([fragment(DISCRETE, steps=64, seed=1, reward=float("nan"))])
    assert learner.skipped_updates == 1 and learner.gradient_steps == steps_before
    assert math.isnan(metrics["losses/q"])
    for key, value in learner.q.state_dict().items():
        torch.testing.assert_close(value, before[key])


@pytest.mark.parametrize("with_replay", [False, True])
def test_checkpoint_state_continues_counters(tmp_path, with_replay):
    learner = sac()
    learner.save_replay = with_replay
    for seed in range(3):
        learner.update([fragment(BOX, steps=8, seed=seed)])
    path = agents.save_checkpoint(tmp_path / "ckpt.pt", learner, {"note": 1})
    other = sac()
    assert agents.load_checkpoint(path, other) == {"note": 1}
    assert (other.gradient_steps, other.env_steps_consumed, other.version) == (
        learner.gradient_steps, learner.env_steps_consumed, learner.version)
    assert other.log_alpha.item() == pytest.approx(learner.log_alpha.item())
    for name, module in learner.modules().items():
        for key, value in module.state_dict().items():
            torch.testing.assert_close(other.modules()[name].state_dict()[key], value)
    assert other.actor_optimizer.steps == learner.actor_optimizer.steps
    assert other.replay_restored is with_replay
    assert other.replay.size == (learner.replay.size if with_replay else 0)
    with pytest.raises(agents.CheckpointError, match="algorithm differs"):
        agents.load_checkpoint(path, agents.make_learner(OBS, BOX, POLICY, agents.AlgoConfig(device="cpu"), seed=0))


def test_wrong_action_space_is_named():
    with pytest.raises(ValueError, match="sac needs Box actions"):
        agents.make_learner(OBS, DISCRETE, POLICY, agents.AlgoConfig(name="sac", device="cpu"), seed=0)
    with pytest.raises(ValueError, match="dqn needs Discrete actions"):
        agents.make_learner(OBS, BOX, POLICY, agents.AlgoConfig(name="dqn", device="cpu"), seed=0)


def test_config_fields_are_checked_and_unread_ones_listed():
    for field, value in (("tau", 0.0), ("updates_per_step", 0), ("n_step", 0), ("learning_starts", -1),
                         ("epsilon_end", 1.5), ("dueling", "yes"), ("batch_size", 10**7)):
        with pytest.raises(ValueError, match=f"^{field}:"):
            agents.AlgoConfig(name="dqn", **{field: value})
    assert "n_step" in agents.AlgoConfig(name="sac").unread_fields()
    assert "init_alpha" not in agents.AlgoConfig(name="sac").unread_fields()
    assert "learning_starts" in agents.AlgoConfig(name="ppo").unread_fields()
    assert "clip_coef" in agents.AlgoConfig(name="dqn").unread_fields()


@pytest.mark.parametrize("n_step", [1, 3])
def test_dqn_learns_the_analytic_values_of_a_terminating_chain(n_step):
    """A K-step chain (one-hot obs of the step, reward 1 each step, terminated after step K-1,
    both actions alike): Q(s_t, a) = (1 - gamma^(K-t)) / (1 - gamma), the analytic value."""
    chain, copies, gamma = 5, 16, 0.9
    obs_space, act_space = spaces.Box(0, 1, (chain,), np.float32), spaces.Discrete(2)
    rng = np.random.default_rng(0)

    def chain_fragment(steps=chain * 4):
        t = np.arange(steps + 1)[:, None] % chain * np.ones((1, copies), int)
        zeros = np.zeros((steps, copies), np.float32)
        return agents.Fragment(obs=np.eye(chain, dtype=np.float32)[t], actions=rng.integers(0, 2, (steps, copies)),
                               logp=zeros, values=zeros, rewards=np.ones((steps, copies), np.float32),
                               terminated=t[:-1] == chain - 1, truncated=np.zeros((steps, copies), bool),
                               final_values=zeros)
    cfg = agents.AlgoConfig(name="dqn", device="cpu", lr=1e-2, learning_starts=64, batch_size=64, updates_per_step=0.25,
                            gamma=gamma, n_step=n_step, tau=1.0, target_update_every=20)
    learner = agents.make_learner(obs_space, act_space, agents.PolicyConfig(hidden_sizes=[32]), cfg, seed=0)
    for _ in range(20):
        learner.update([chain_fragment()])
    q = learner.q(torch.eye(chain)).detach().numpy()
    want = (1 - gamma ** (chain - np.arange(chain))) / (1 - gamma)
    np.testing.assert_allclose(q, np.repeat(want[:, None], 2, 1), atol=0.05)


def test_dqn_bootstraps_through_a_time_limit_to_the_analytic_values_of_a_cycle():
    """A cycle of K positions (one-hot obs, reward p / K at position p, never terminated, both
    actions alike) cut by a time limit every L steps: the limit only truncates, so
    Q(p, a) = sum_{j<K} gamma^j r((p + j) mod K) / (1 - gamma^K), the infinite-horizon value,
    whatever the reset position. Treating the limit as a termination, or bootstrapping from
    the reset obs instead of the final obs, lands elsewhere (CartPole's 500-step limit)."""
    positions, limit, copies, gamma, steps = 4, 7, 16, 0.9, 28
    eye = np.eye(positions, dtype=np.float32)
    reward_of = np.arange(positions, dtype=np.float32) / positions
    rng = np.random.default_rng(0)
    start = {"position": rng.integers(0, positions, copies), "age": rng.integers(0, limit, copies)}

    def cycle_fragment():
        """same_step autoreset: a truncated copy restarts at position 0, its final obs in final_obs."""
        position, age = start["position"], start["age"]
        obs, rewards, truncated, finals, final_index = [eye[position]], [], [], [], []
        for t in range(steps):
            rewards.append(reward_of[position])
            position, age = (position + 1) % positions, age + 1
            cut = age == limit
            finals.append(eye[position[cut]])
            final_index.append(t * copies + np.flatnonzero(cut))
            position, age = np.where(cut, 0, position), np.where(cut, 0, age)
            obs.append(eye[position])
            truncated.append(cut)
        start.update(position=position, age=age)
        zeros = np.zeros((steps, copies), np.float32)
        return agents.Fragment(obs=np.stack(obs), actions=rng.integers(0, 2, (steps, copies)), logp=zeros,
                               values=zeros, rewards=np.stack(rewards), terminated=np.zeros((steps, copies), bool),
                               truncated=np.stack(truncated), final_values=zeros, final_obs=np.concatenate(finals),
                               final_index=np.concatenate(final_index).astype(np.int64))
    cfg = agents.AlgoConfig(name="dqn", device="cpu", lr=1e-2, learning_starts=64, batch_size=64, updates_per_step=0.25,
                            gamma=gamma, tau=1.0, target_update_every=20)
    learner = agents.make_learner(spaces.Box(0, 1, (positions,), np.float32), spaces.Discrete(2),
                                  agents.PolicyConfig(hidden_sizes=[32]), cfg, seed=0)
    for _ in range(20):
        learner.update([cycle_fragment()])
    q = learner.q(torch.eye(positions)).detach().numpy()
    ahead = (np.arange(positions)[:, None] + np.arange(positions)[None, :]) % positions  # [p, j] -> (p + j) mod K
    want = (gamma ** np.arange(positions) * reward_of[ahead]).sum(1) / (1 - gamma**positions)
    np.testing.assert_allclose(q, np.repeat(want[:, None], 2, 1), atol=0.05)
