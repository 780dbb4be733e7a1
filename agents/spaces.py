"""ActionSpec: what a policy head must produce for an action space (numpy only).

Runners that act through the numpy policy import this without torch. Spaces are
duck-typed (Discrete has `n`, MultiDiscrete `nvec`, Box `low`/`high`), so agents/ does not
depend on any env package.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    def numpy_dtype(self):
        return np.float32 if self.kind == "box" else np.int64

    def describe(self) -> dict:
        """A plain dict (for checkpoints: compare before loading)."""
        out = {"kind": self.kind, "shape": list(self.shape), "nvec": list(self.nvec)}
        if self.kind == "box":
            out["low"] = [float(x) for x in self.low]
            out["high"] = [float(x) for x in self.high]
        return out
