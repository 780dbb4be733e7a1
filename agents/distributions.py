"""Action distributions for the three action-space kinds, as plain tensor math.

No torch.distributions objects: the learner evaluates log-probs and entropies of whole
minibatches, and building distribution objects (with argument validation) per call costs
more than the math. Spaces are duck-typed (Discrete has `n`, MultiDiscrete `nvec`, Box
`low`/`high`), so agents/ does not depend on any env package.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ActionSpec:
    """What the policy head must produce: kind, per-step action shape, sizes and bounds."""

    kind: str
    """"discrete" | "multidiscrete" | "box"."""
    shape: tuple[int, ...]
    """One action's shape: () discrete, (k,) multidiscrete, the Box's shape."""
    nvec: tuple[int, ...]
    """Category counts per sub-action (discrete: (n,); box: ())."""
    low: np.ndarray | None = None
    """Box only: the lower bounds, float32 (env_actions clips to them)."""
    high: np.ndarray | None = None
    """Box only: the upper bounds, float32."""

    @classmethod
    def from_space(cls, space) -> "ActionSpec":
        if hasattr(space, "nvec"):
            nvec = np.asarray(space.nvec)
            if nvec.ndim != 1:
                raise ValueError(f"action space: MultiDiscrete must be 1-D, got nvec shape {nvec.shape}")
            return cls("multidiscrete", (len(nvec),), tuple(int(n) for n in nvec))
        if hasattr(space, "n") and not hasattr(space, "low"):
            if int(getattr(space, "start", 0)) != 0:
                raise ValueError("action space: Discrete with start != 0 is not supported")
            return cls("discrete", (), (int(space.n),))
        if hasattr(space, "low") and hasattr(space, "high"):
            shape = tuple(int(s) for s in space.shape)
            if len(shape) != 1:
                raise ValueError(f"action space: Box actions must be 1-D, got shape {shape}")
            return cls("box", shape, (), np.asarray(space.low, np.float32), np.asarray(space.high, np.float32))
        raise ValueError(f"action space: {space!r} is not Discrete, MultiDiscrete or Box")

    @property
    def num_outputs(self) -> int:
        """Width of the actor's last layer (logits, or the Gaussian mean)."""
        return self.shape[0] if self.kind == "box" else int(sum(self.nvec))

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.kind == "box" else torch.int64

    @property
    def numpy_dtype(self):
        return np.float32 if self.kind == "box" else np.int64

    def describe(self) -> dict:
        """A plain dict (for checkpoints: compare before loading)."""
        out = {"kind": self.kind, "shape": list(self.shape), "nvec": list(self.nvec)}
        if self.kind == "box":
            out["low"] = [float(x) for x in self.low]
            out["high"] = [float(x) for x in self.high]
        return out


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
