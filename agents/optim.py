"""Adam (Kingma & Ba 2015) on torch's multi-tensor foreach ops.

The same update as torch.optim.Adam (non-fused, non-capturable, no weight decay). It exists
because constructing any torch.optim optimizer imports torch._dynamo, which adds seconds to
every `rlfarm train` start-up, a large share of the time the demo takes to solve CartPole.
tests/agents/test_optim.py checks it against torch.optim.Adam step by step.

`step_on_device` is the same update with the learning rate and the step count held in
device tensors, so that a CUDA graph can replay it (agents/cuda_graph.py).
"""
from __future__ import annotations

import math
from typing import Iterable

import torch


class Adam:
    """Adam over one parameter group; `param_groups[0]["lr"]` is the learning rate."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.param_groups = [{"lr": float(lr)}]
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self._device_lr: torch.Tensor | None = None
        self._device_steps: torch.Tensor | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        beta1, beta2 = self.betas
        self.steps += 1
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - beta2)
        step_size = self.param_groups[0]["lr"] / (1 - beta1**self.steps)
        denominator = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denominator, math.sqrt(1 - beta2**self.steps))
        torch._foreach_add_(denominator, self.eps)
        torch._foreach_addcdiv_(self.params, self.exp_avg, denominator, value=-step_size)

    def load_device_scalars(self) -> None:
        """Copy lr and the step count to the device tensors `step_on_device` reads."""
        if self._device_lr is None:
            device = self.params[0].device
            self._device_lr = torch.zeros((), device=device)
            self._device_steps = torch.zeros((), device=device)
        self._device_lr.fill_(self.param_groups[0]["lr"])
        self._device_steps.fill_(self.steps)

    @torch.no_grad()
    def step_on_device(self) -> None:
        """`step` without host scalars: call `load_device_scalars` first, and count each call
        in `steps` on the host (code in a CUDA graph runs in Python only at capture)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        beta1, beta2 = self.betas
        self._device_steps.add_(1)
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - beta2)
        step_size = self._device_lr / (1 - torch.pow(beta1, self._device_steps))
        denominator = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denominator, (1 - torch.pow(beta2, self._device_steps)).sqrt())
        torch._foreach_add_(denominator, self.eps)
        updates = torch._foreach_div(self.exp_avg, denominator)
        torch._foreach_mul_(updates, -step_size)
        torch._foreach_add_(self.params, updates)

    def state_tensors(self) -> list[torch.Tensor]:
        """The tensors a step changes, besides the parameters (for a snapshot)."""
        return self.exp_avg + self.exp_avg_sq

    def state_dict(self) -> dict:
        return {"lr": self.param_groups[0]["lr"], "betas": list(self.betas), "eps": self.eps, "steps": self.steps,
                "exp_avg": [t.detach().cpu().clone() for t in self.exp_avg],
                "exp_avg_sq": [t.detach().cpu().clone() for t in self.exp_avg_sq]}

    def check_state_dict(self, state: dict) -> None:
        """ValueError unless `state` has moments of this optimizer's parameter shapes."""
        for key in ("exp_avg", "exp_avg_sq"):
            shapes = [tuple(t.shape) for t in state[key]]
            if shapes != [tuple(p.shape) for p in self.params]:
                raise ValueError(f"optimizer state {key} does not match the model's parameters")

    def load_state_dict(self, state: dict) -> None:
        self.check_state_dict(state)
        self.param_groups[0]["lr"] = float(state["lr"])
        self.betas = (float(state["betas"][0]), float(state["betas"][1]))
        self.eps = float(state["eps"])
        self.steps = int(state["steps"])
        # In place: a captured CUDA graph holds these tensors' addresses.
        for current, loaded in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            current.copy_(loaded)
