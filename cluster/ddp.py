"""Data-parallel learners with torch.distributed (NCCL on GPUs, gloo on CPU).

Each of `num_learners` learner actors holds a full copy of the model and updates on its
share of every batch. The gradients are averaged across learners during `backward()`
(one flat all-reduce per backward), so the clipping and the optimizer step that follow see the
same gradient on every learner and the parameters stay identical, bit for bit on gloo.
The observation normalizer's batch moments are merged the same way.

Why not `torch.nn.parallel.DistributedDataParallel`: DDP must wrap the module that
`forward` is called on, and the learners in agents/ call their own model methods. agents/
exposes two hooks instead (`learner.grad_sync`, `learner.moments_sync`); this file
provides the collectives that fill them.

With equal shares and a mean loss per share, the average of the shares' gradients is the
full batch's gradient, so N learners take the same steps as one learner on the whole batch.
"""
from __future__ import annotations

import datetime
import socket
from typing import Iterable, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


def pick_backend(device: torch.device | str) -> str:
    """NCCL for CUDA tensors, gloo for CPU ones."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def free_port() -> int:
    """A TCP port free on this host right now (the rank-0 learner's rendezvous port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def init_group(rank: int, world_size: int, master_addr: str, master_port: int,
               backend: str = "gloo", timeout_s: float = 120.0) -> None:
    """Join the learners' process group (every rank calls this with the same address)."""
    if dist.is_initialized():
        return
    dist.init_process_group(
        backend=backend, init_method=f"tcp://{master_addr}:{master_port}",
        rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=timeout_s))


def destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def broadcast_tensors_(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Overwrite every rank's tensors with those of rank `src` (initial parameters)."""
    for tensor in tensors:
        dist.broadcast(tensor.data, src=src)


@torch.no_grad()
def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace every rank's gradients by their mean across the group, in one all-reduce.

    agents/ calls this (as `learner.grad_sync`) after backward and before the grad-norm
    clip, so every rank clips and steps the same gradient.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def merge_moments(mean: np.ndarray, var: np.ndarray, count: float,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray, float]:
    """The moments of the union of every rank's observations (as `learner.moments_sync`).

    Sums of count, count*mean and count*(var + mean^2) are all-reduced in float64, so every
    rank's normalizer folds in the same numbers and stays equal.
    """
    mean64 = torch.as_tensor(np.asarray(mean, np.float64), device=device)
    var64 = torch.as_tensor(np.asarray(var, np.float64), device=device)
    count64 = torch.tensor([float(count)], dtype=torch.float64, device=device)
    packed = torch.cat([count64, count64 * mean64.reshape(-1), count64 * (var64 + mean64 ** 2).reshape(-1)])
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    total = packed[0]
    size = mean64.numel()
    new_mean = packed[1:1 + size] / total
    new_var = (packed[1 + size:] / total - new_mean ** 2).clamp_(min=0.0)
    shape = np.shape(mean)
    return (new_mean.reshape(shape).cpu().numpy(), new_var.reshape(shape).cpu().numpy(),
            float(total.item()))


def share(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank `rank`'s share of a batch's fragments: every world_size-th one.

    The driver keeps batches a multiple of world_size fragments, so shares are equal.
    """
    return list(items[rank::world_size])


@torch.no_grad()
def all_equal(tensors: Iterable[torch.Tensor]) -> bool:
    """True when every rank holds exactly the same values (a cheap check for tests and logs)."""
    tensors = list(tensors)
    flat = torch.cat([t.detach().reshape(-1).double() for t in tensors])
    low, high = flat.clone(), flat.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high))
