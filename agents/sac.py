"""SAC: Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv 1812.05905),
read as CleanRL's sac_continuous_action.py and Stable-Baselines3's SAC do.

Box actions only. One gradient step on a replay minibatch (obs s, action a, reward r, next
obs s', discount d = gamma^m, 0 after a termination; agents/replay.py):

  1. critics: y = r + d * (min_i Q'_i(s', a') - alpha * log pi(a'|s')),  a' ~ pi(.|s'),
     loss 0.5 * sum_i mean (Q_i(s, a) - y)^2  (eq. 5 with twin Q and target nets Q'_i);
  2. actor: mean (alpha * log pi(a~|s) - min_i Q_i(s, a~)),  a~ ~ pi(.|s) by reparameterization (eq. 7);
  3. temperature: mean -(log alpha) * (log pi(a~|s) + target_entropy)  (eq. 18, on log alpha);
  4. targets: Q'_i <- tau * Q_i + (1 - tau) * Q'_i.

The actor is a tanh-squashed Gaussian: u ~ N(mu(s), sigma(s)), a = scale * tanh(u) + centre,
log pi(a|s) = log N(u) - sum log(scale * (1 - tanh(u)^2))  (appendix C), where the Box's
bounds give scale and centre.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rlfarm.agents.offpolicy import OffPolicyLearner, plain_mlp, polyak
from rlfarm.agents.optim import Adam
from rlfarm.agents.policy import ACTIVATIONS

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # CleanRL's bounds: a std in [0.007, 7.4]
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class SquashedGaussianActor(nn.Module):
    """pi(a|s): an MLP trunk, then the mean and log std of u; a = scale * tanh(u) + centre."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: list[int], activation: str,
                 scale, centre):
        super().__init__()
        self.trunk = plain_mlp(obs_dim, hidden_sizes, activation)
        self.mean = nn.Linear(hidden_sizes[-1], action_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], action_dim)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("centre", torch.as_tensor(centre, dtype=torch.float32))

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None = None):
        """(actions [B, A] inside the bounds, log pi [B]) by reparameterization."""
        features = self.trunk(obs.reshape(obs.shape[0], -1))
        mean = self.mean(features)
        log_std = self.log_std(features).clamp(LOG_STD_MIN, LOG_STD_MAX)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + noise * log_std.exp()
        log_normal = (-0.5 * noise.square() - log_std - LOG_SQRT_2PI).sum(-1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        log_jacobian = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u)) + self.scale.log()).sum(-1)
        return self.scale * torch.tanh(u) + self.centre, log_normal - log_jacobian

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The mode's action, scale * tanh(mu(s)) + centre (what evaluation acts with)."""
        return self.scale * torch.tanh(self.mean(self.trunk(obs.reshape(obs.shape[0], -1)))) + self.centre


class TwinQ(nn.Module):
    """Q_1(s, a) and Q_2(s, a), two MLPs on [s, a] evaluated together: each layer holds both
    critics' weights stacked [2, in, out] and runs as one batched matmul (half the ops of two
    separate MLPs; each critic keeps torch.nn.Linear's default init)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: list[int], activation: str):
        super().__init__()
        sizes = [obs_dim + action_dim, *hidden_sizes, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in))
            self.weights.append(nn.Parameter(torch.empty(2, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(2, 1, fan_out).uniform_(-bound, bound)))
        self.activation = ACTIVATIONS[activation]()

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs.reshape(obs.shape[0], -1), actions], -1).expand(2, -1, -1)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if i < last:
                x = self.activation(x)
        return x[0, :, 0], x[1, :, 0]


class SACLearner(OffPolicyLearner):
    algo_name = "sac"
    LOSS_KEYS = ("losses/q1", "losses/q2", "losses/actor", "losses/alpha", "learner/alpha", "learner/entropy",
                 "learner/q_mean")

    def build(self) -> None:
        spec, cfg, policy = self.action_spec, self.algo_cfg, self.policy_cfg
        if spec.kind != "box":
            raise ValueError(f"algo.name: sac needs Box actions; this env's actions are {spec.kind}")
        if not (torch.isfinite(torch.as_tensor(spec.low)).all() and torch.isfinite(torch.as_tensor(spec.high)).all()):
            raise ValueError("algo.name: sac needs finite Box bounds (the actor squashes into them)")
        action_dim = spec.shape[0]
        scale, centre = (spec.high - spec.low) / 2.0, (spec.high + spec.low) / 2.0
        self.actor = SquashedGaussianActor(self.obs_dim, action_dim, policy.hidden_sizes, policy.activation,
                                           scale, centre).to(self.device)
        self.critic = TwinQ(self.obs_dim, action_dim, policy.hidden_sizes, policy.activation).to(self.device)
        self.critic_target = TwinQ(self.obs_dim, action_dim, policy.hidden_sizes, policy.activation).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device, requires_grad=cfg.autotune_alpha)
        self.target_entropy = float(-action_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.actor_optimizer = Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optimizer = Adam(self.critic.parameters(), lr=cfg.lr)
        self.alpha_optimizer = Adam([self.log_alpha], lr=cfg.lr) if cfg.autotune_alpha else None

    def gradient_step(self, batch) -> torch.Tensor:
        cfg = self.algo_cfg
        alpha = self.log_alpha.detach().exp()
        # 1. critics toward the soft Bellman target
        with torch.no_grad():
            next_actions, next_logp = self.actor(batch.next_obs, self.generator)
            target_q1, target_q2 = self.critic_target(batch.next_obs, next_actions)
            soft_value = torch.min(target_q1, target_q2) - alpha * next_logp
            target = batch.rewards + batch.discounts * soft_value
        q1, q2 = self.critic(batch.obs, batch.actions)
        q1_loss, q2_loss = F.mse_loss(q1, target), F.mse_loss(q2, target)
        self.critic_optimizer.zero_grad()
        (0.5 * (q1_loss + q2_loss)).backward()
        self.critic_optimizer.step()
        # 2. actor: maximize min Q minus the entropy cost (the critics' grads are cleared next step)
        actions, logp = self.actor(batch.obs, self.generator)
        q_pi = torch.min(*self.critic(batch.obs, actions))
        actor_loss = (alpha * logp - q_pi).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        # 3. temperature toward the target entropy
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        if self.alpha_optimizer is not None:
            self.alpha_optimizer.zero_grad()
            alpha_loss.backward()
            self.alpha_optimizer.step()
        # 4. target critics
        polyak(self.critic_target, self.critic, cfg.tau)
        return torch.stack([q1_loss.detach(), q2_loss.detach(), actor_loss.detach(), alpha_loss.detach(),
                            alpha, -logp.detach().mean(), q1.detach().mean()])

    def acting_params(self) -> dict[str, torch.Tensor]:
        return dict(self.actor.state_dict())

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}

    def optimizers(self) -> dict:
        optimizers = {"actor": self.actor_optimizer, "critic": self.critic_optimizer}
        if self.alpha_optimizer is not None:
            optimizers["alpha"] = self.alpha_optimizer
        return optimizers

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"log_alpha": self.log_alpha}
