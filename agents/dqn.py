"""DQN with double Q-learning targets (van Hasselt et al. 2016, arXiv 1509.06461), n-step
returns and an optional dueling head (Wang et al. 2016, arXiv 1511.06581), read as CleanRL's
dqn.py and Stable-Baselines3's DQN do.

Discrete actions only. One gradient step on a replay minibatch (obs s, action a, n-step
return r, obs s' n steps on, discount d = gamma^m, 0 after a termination; agents/replay.py):

  1. the online net picks the next action, the target net values it:
     y = r + d * Q'(s', argmax_b Q(s', b)); with algo.double_q false, the original DQN
     target y = r + d * max_b Q'(s', b) (Mnih et al. 2015, as SB3's DQN);
  2. loss: Huber(Q(s, a) - y) (SB3's smooth L1, which rl-zoo's hyperparameters were tuned
     with), gradient norm clipped at algo.max_grad_norm;
  3. every `algo.target_update_every` gradient steps: Q' <- tau * Q + (1 - tau) * Q'.

Exploration is the runners' (agents/offpolicy_acting.py): epsilon-greedy, epsilon decaying
linearly from epsilon_start to epsilon_end over epsilon_fraction of the run's env steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlfarm.agents.offpolicy import OffPolicyLearner, plain_mlp, polyak
from rlfarm.agents.optim import Adam


class QNetwork(nn.Module):
    """Q(s, .) [B, n]: an MLP trunk and a linear head, or a dueling head V(s) + A(s, .) - mean A(s, .)."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: list[int], activation: str, dueling: bool):
        super().__init__()
        self.trunk = plain_mlp(obs_dim, hidden_sizes, activation)
        self.head = nn.Linear(hidden_sizes[-1], num_actions)
        self.value = nn.Linear(hidden_sizes[-1], 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.trunk(obs.reshape(obs.shape[0], -1))
        q = self.head(features)
        if self.value is None:
            return q
        return self.value(features) + q - q.mean(-1, keepdim=True)


def epsilon_at(env_steps: int, total_env_steps: int | None, start: float, end: float, fraction: float) -> float:
    """Linear decay from start to end over fraction * total env steps (end without a total)."""
    if not total_env_steps:
        return end
    span = fraction * total_env_steps
    progress = 1.0 if span <= 0 else min(1.0, env_steps / span)
    return start + (end - start) * progress


class DQNLearner(OffPolicyLearner):
    algo_name = "dqn"
    LOSS_KEYS = ("losses/q", "learner/q_mean", "losses/grad_norm")

    @property
    def n_step(self) -> int:
        return self.algo_cfg.n_step

    def build(self) -> None:
        spec, cfg, policy = self.action_spec, self.algo_cfg, self.policy_cfg
        if spec.kind != "discrete":
            raise ValueError(f"algo.name: dqn needs Discrete actions; this env's actions are {spec.kind}")
        num_actions = spec.nvec[0]
        self.q = QNetwork(self.obs_dim, num_actions, policy.hidden_sizes, policy.activation, cfg.dueling).to(self.device)
        self.q_target = QNetwork(self.obs_dim, num_actions, policy.hidden_sizes, policy.activation, cfg.dueling).to(self.device)
        self.q_target.load_state_dict(self.q.state_dict())
        self.q_target.requires_grad_(False)
        self.optimizer = Adam(self.q.parameters(), lr=cfg.lr)

    def gradient_step(self, batch) -> torch.Tensor:
        cfg = self.algo_cfg
        with torch.no_grad():
            next_target_q = self.q_target(batch.next_obs)
            if cfg.double_q:
                next_actions = self.q(batch.next_obs).argmax(-1, keepdim=True)
                next_q = next_target_q.gather(-1, next_actions).squeeze(-1)
            else:
                next_q = next_target_q.max(-1).values
            target = batch.rewards + batch.discounts * next_q
        q = self.q(batch.obs).gather(-1, batch.actions.long().unsqueeze(-1)).squeeze(-1)
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.optimizer.params, cfg.max_grad_norm)
        self.optimizer.step()
        if (self.gradient_steps + 1) % cfg.target_update_every == 0:
            polyak(self.q_target, self.q, cfg.tau)
        return torch.stack([loss.detach(), q.detach().mean(), grad_norm.detach()])

    def epsilon(self) -> float:
        cfg = self.algo_cfg
        return epsilon_at(self.env_steps_consumed, self.total_env_steps, cfg.epsilon_start, cfg.epsilon_end,
                          cfg.epsilon_fraction)

    def acting_params(self) -> dict[str, torch.Tensor]:
        return dict(self.q.state_dict())

    def acting_extra(self) -> dict:
        return {"epsilon": self.epsilon(), "runner_epsilons": self.algo_cfg.runner_epsilons,
                "dueling": self.algo_cfg.dueling}

    def schedule_metrics(self) -> dict[str, float]:
        return {"learner/epsilon": self.epsilon()}

    def modules(self) -> dict[str, nn.Module]:
        return {"q": self.q, "q_target": self.q_target}

    def optimizers(self) -> dict:
        return {"q": self.optimizer}
