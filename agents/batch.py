"""Fragments -> one learner batch of tensors on the learner's device.

On CUDA every array of every fragment is written into one pinned host buffer (8-byte
aligned slots, fragments side by side along the env axis), which goes to the GPU in ONE
non_blocking copy; the tensors are dtype views into the device buffer. On CPU the
concatenated numpy arrays are wrapped without further copies.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from rlfarm.agents.fragment import STEP_FIELDS, Fragment

FIELDS = ("obs",) + STEP_FIELDS
ALIGN = 8


@dataclass
class Batch:
    """The tensors of a [T, N] batch (obs has T+1 rows)."""

    obs: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_values: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.rewards.shape)


class DeviceStager:
    """Moves fragments to `device`; keeps its pinned staging buffer between updates."""

    def __init__(self, device: torch.device):
        self.device = device
        self._staging: torch.Tensor | None = None
        self._copy_done: torch.cuda.Event | None = None

    def __call__(self, fragments: Sequence[Fragment]) -> Batch:
        if self.device.type != "cuda":
            joined = Fragment.concat(fragments)
            with warnings.catch_warnings():
                # Fragments from Ray's object store are read-only; the learner never writes its inputs.
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                return Batch(**{name: torch.from_numpy(np.ascontiguousarray(getattr(joined, name))) for name in FIELDS})
        return self._to_cuda(fragments)

    def _layout(self, fragments: Sequence[Fragment]):
        total_envs = sum(f.num_envs for f in fragments)
        slots, offset = {}, 0
        for name in FIELDS:
            first = getattr(fragments[0], name)
            shape = (first.shape[0], total_envs, *first.shape[2:])
            nbytes = int(np.prod(shape)) * first.dtype.itemsize
            slots[name] = (offset, nbytes, shape, first.dtype)
            offset += -(-nbytes // ALIGN) * ALIGN
        return slots, offset

    def _to_cuda(self, fragments: Sequence[Fragment]) -> Batch:
        if len({f.horizon for f in fragments}) != 1:
            raise ValueError("fragments differ in length T")
        slots, total = self._layout(fragments)
        if self._staging is None or self._staging.numel() < total:
            self._staging = torch.empty(total, dtype=torch.uint8, pin_memory=True)
        elif self._copy_done is not None:
            self._copy_done.synchronize()  # the previous batch's copy must leave the buffer first
        host = self._staging.numpy()
        for name, (offset, nbytes, shape, dtype) in slots.items():
            destination = host[offset:offset + nbytes].view(dtype).reshape(shape)
            column = 0
            for fragment in fragments:
                source = getattr(fragment, name)
                destination[:, column:column + source.shape[1]] = source
                column += source.shape[1]
        device_buffer = self._staging[:total].to(self.device, non_blocking=True)
        self._copy_done = torch.cuda.Event()
        self._copy_done.record()
        tensors = {}
        for name, (offset, nbytes, shape, dtype) in slots.items():
            torch_dtype = torch.from_numpy(np.zeros(0, dtype)).dtype
            tensors[name] = device_buffer[offset:offset + nbytes].view(torch_dtype).reshape(shape)
        return Batch(**tensors)
