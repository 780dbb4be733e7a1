"""One learner minibatch step (loss, backward, grad-norm clip, Adam) as a replayed CUDA graph.

For the small networks RL uses, a minibatch step on a GPU is about 150 tiny kernels, and
launching them one by one from Python takes longer than running them: every kernel is
bound by its launch (docs/results/performance.md has the learner's figures with and without graphs).
A graph launches the whole step at once. Its
inputs are static buffers that `__call__` fills with one `index_select` per field; Adam
reads its lr and step count from device tensors (`Adam.step_on_device`), so a replay needs
nothing from the host.

Capture runs the step twice on a side stream first (cuBLAS and autograd set up their state
there, as torch's docs require); those warm-up steps change the weights and Adam's moments,
so both are snapshotted before and restored after.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch

WARMUP_STEPS = 2
CAPTURE_DEVICE_TYPES = ("cuda",)
"""Devices whose learners capture their steps (tests widen it to CPU with capture emulated)."""


class GraphedStep:
    """`step_fn(*static_inputs) -> stats` captured once for inputs shaped like `examples`."""

    def __init__(self, step_fn: Callable[..., torch.Tensor], examples: Sequence[torch.Tensor],
                 state: Sequence[torch.Tensor]):
        self.step_fn = step_fn
        self.inputs = [example.clone() for example in examples]
        snapshot = [tensor.detach().clone() for tensor in state]
        try:
            self.warm_up()
        finally:
            with torch.no_grad():
                for tensor, saved in zip(state, snapshot):
                    tensor.copy_(saved)
        self.stats = self.capture()

    def warm_up(self) -> None:
        """Run the step WARMUP_STEPS times on a side stream (the caller restores the state)."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self.step_fn(*self.inputs)
        finally:
            torch.cuda.current_stream().wait_stream(side)

    def capture(self) -> torch.Tensor:
        """Record the step's kernels once; returns its stats tensor, which each replay rewrites."""
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: a CUDA call from another thread of the process cannot break the capture.
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            return self.step_fn(*self.inputs)

    def replay(self) -> torch.Tensor:
        self.graph.replay()
        return self.stats

    def __call__(self, index: torch.Tensor, sources: Sequence[torch.Tensor]) -> torch.Tensor:
        """Run the step on rows `index` of `sources`; the returned stats are overwritten by
        the next call (use them before, in stream order)."""
        for static, source in zip(self.inputs, sources):
            torch.index_select(source, 0, index, out=static)
        return self.replay()


class GraphCache:
    """Captured steps by input shapes and dtypes; the oldest goes when `capacity` are held
    (a learner fed batches of several sizes keeps one graph per minibatch shape)."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self.graphs: OrderedDict[tuple, GraphedStep] = OrderedDict()

    def get(self, step_fn: Callable[..., torch.Tensor], examples: Sequence[torch.Tensor],
            state: Sequence[torch.Tensor]) -> GraphedStep:
        key = tuple((tuple(x.shape), x.dtype) for x in examples)
        if key in self.graphs:
            self.graphs.move_to_end(key)
        else:
            if len(self.graphs) >= self.capacity:
                self.graphs.popitem(last=False)
            self.graphs[key] = GraphedStep(step_fn, examples, state)
        return self.graphs[key]
