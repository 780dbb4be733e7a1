"""Action distributions for the three action-space kinds, as plain tensor math.

No torch.distributions objects: the learner evaluates log-probs and entropies of whole
minibatches, and building distribution objects (with argument validation) per call costs
more than the math. agents/numpy_acting.py holds the numpy twins of `sample` and `log_prob`
that runners act with; tests/agents/test_numpy_acting.py checks that they agree.
"""
from __future__ import annotations

import math

import torch

from rlfarm.agents.spaces import ActionSpec  # noqa: F401  (re-exported: the spec belongs with the math)

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _split_logits(spec: ActionSpec, logits: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.split(logits, list(spec.nvec), dim=-1))


def _categorical_sample(logits: torch.Tensor, generator, deterministic: bool) -> torch.Tensor:
    if deterministic:
        return logits.argmax(-1)
    # Gumbel-max: one uniform draw per logit, no softmax normalization needed.
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-10, 1.0)
    return (logits - torch.log(-torch.log(uniform))).argmax(-1)


def _categorical_logp(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def _categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    log_probs = torch.log_softmax(logits, -1)
    return -(log_probs.exp() * log_probs).sum(-1)


def sample(spec: ActionSpec, head_out: torch.Tensor, log_std: torch.Tensor | None,
           generator: torch.Generator | None = None, deterministic: bool = False) -> torch.Tensor:
    """Draw actions [B, *spec.shape]; Box actions are NOT clipped (see ActingPolicy.env_actions)."""
    if spec.kind == "box":
        if deterministic:
            return head_out
        noise = torch.randn(head_out.shape, generator=generator, device=head_out.device)
        return head_out + noise * log_std.exp()
    if spec.kind == "discrete":
        return _categorical_sample(head_out, generator, deterministic)
    return torch.stack([_categorical_sample(lg, generator, deterministic)
                        for lg in _split_logits(spec, head_out)], dim=-1)


def log_prob(spec: ActionSpec, head_out: torch.Tensor, log_std: torch.Tensor | None,
             actions: torch.Tensor) -> torch.Tensor:
    """Log-probability [B] of `actions` (the unclipped sample, for Box)."""
    if spec.kind == "box":
        z = (actions - head_out) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - LOG_SQRT_2PI).sum(-1)
    if spec.kind == "discrete":
        return _categorical_logp(head_out, actions)
    return sum(_categorical_logp(lg, actions[..., i]) for i, lg in enumerate(_split_logits(spec, head_out)))


def entropy(spec: ActionSpec, head_out: torch.Tensor, log_std: torch.Tensor | None) -> torch.Tensor:
    """Entropy [B] of the action distribution."""
    if spec.kind == "box":
        per_sample = (0.5 + LOG_SQRT_2PI + log_std).sum()
        return per_sample.expand(head_out.shape[0])
    if spec.kind == "discrete":
        return _categorical_entropy(head_out)
    return sum(_categorical_entropy(lg) for lg in _split_logits(spec, head_out))
