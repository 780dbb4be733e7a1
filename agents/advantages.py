"""Advantage estimators on [T, N] tensors: GAE(lambda) and V-trace.

Both reduce to one reverse recursion over T (`discounted_reverse_sum`); every step of it is
vectorized over the N env copies.

Episode ends inside a fragment (envs autoreset in the same step, so row t+1 already
belongs to the next episode where row t ended one) are handled by `fold_episode_ends`:
- a terminated step has no future: its discount is 0;
- a truncated step's future is V(final obs), which the runner stored in `final_values`:
  it is folded into the reward as gamma * V(final obs), and the discount is 0 as well, so
  neither the value nor the trace of the next episode leaks across the boundary.
"""
from __future__ import annotations

import torch


def fold_episode_ends(rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                      final_values: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards with the truncation bootstrap folded in, per-step discounts) [T, N]."""
    bootstrap = truncated & ~terminated  # terminated wins when an env reports both
    folded = rewards + gamma * final_values * bootstrap
    discounts = gamma * (~(terminated | truncated)).to(rewards.dtype)
    return folded, discounts


def discounted_reverse_sum(deltas: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
    """x_t = deltas_t + trace_t * x_{t+1}, with x_T = 0: the recursion GAE and V-trace share.

    A loop over T only; each step is one vectorized op over the N env copies. The sum is
    written straight into its row of the output: on a GPU each step costs kernel launches."""
    out = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = torch.add(deltas[t], trace[t] * running, out=out[t])
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, bootstrap_value: torch.Tensor,
        discounts: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016).

    rewards, values, discounts: [T, N] (from `fold_episode_ends`); bootstrap_value: V(obs[T]) [N].
    Returns (advantages, returns = advantages + values).
    """
    next_values = torch.cat([values[1:], bootstrap_value.unsqueeze(0)], dim=0)
    deltas = rewards + discounts * next_values - values
    advantages = discounted_reverse_sum(deltas, discounts * lam)
    return advantages, advantages + values


def vtrace(behaviour_logp: torch.Tensor, target_logp: torch.Tensor, rewards: torch.Tensor,
           values: torch.Tensor, bootstrap_value: torch.Tensor, discounts: torch.Tensor,
           rho_bar: float = 1.0, c_bar: float = 1.0, lam: float = 1.0,
           pg_rho_bar: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, section 4.1).

        rho_t = min(rho_bar, pi/mu),  c_t = lam * min(c_bar, pi/mu)
        v_s - V(x_s) = delta_s + gamma_s c_s (v_{s+1} - V(x_{s+1})),  delta_s = rho_s (r_s + gamma_s V(x_{s+1}) - V(x_s))
        A_s = min(pg_rho_bar, pi/mu) (r_s + gamma_s v_{s+1} - V(x_s))

    values are the *target* (current) network's; pg_rho_bar defaults to rho_bar.
    Returns (vs, pg_advantages), both [T, N] and detached.
    """
    with torch.no_grad():
        ratios = torch.exp(target_logp - behaviour_logp)
        rhos = ratios.clamp(max=rho_bar)
        cs = lam * ratios.clamp(max=c_bar)
        next_values = torch.cat([values[1:], bootstrap_value.unsqueeze(0)], dim=0)
        deltas = rhos * (rewards + discounts * next_values - values)
        vs = discounted_reverse_sum(deltas, discounts * cs) + values
        next_vs = torch.cat([vs[1:], bootstrap_value.unsqueeze(0)], dim=0)
        pg_rhos = ratios.clamp(max=rho_bar if pg_rho_bar is None else pg_rho_bar)
        pg_advantages = pg_rhos * (rewards + discounts * next_vs - values)
    return vs, pg_advantages
