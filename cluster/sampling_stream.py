"""Sampling without training: the farm's public hook for benchmarks.

`RayFarm.sampling_stream()` keeps every runner at its `max_inflight` requests with the
farm's current weights and hands each arriving fragment's reference to the learner actor,
which receives the fragment from the object store and discards it (`LearnerActor.consume`).
Nothing is updated, so the policy version never moves and no fragment goes stale. Each
`poll()` reports what arrived and what the learner received, so a benchmark can time and
count the farm's sampling and delivery without importing Ray or reaching into the farm.

Deliveries are grouped as a training batch groups fragments: one learner call per fragment
from each runner, sooner only where waiting would leave a runner with nothing to sample
(`deliver_now`). Each Ray call costs CPU that the runners share on a small machine, so
grouping lets the benchmark measure the delivery a training run makes, not a chattier one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray

from rlfarm.agents.fragment import FragmentMeta
from rlfarm.cluster.runner_pool import Request, RunnerPool


@dataclass
class StreamEvents:
    """What one `SamplingStream.poll()` saw."""

    arrived: list[FragmentMeta] = field(default_factory=list)
    """Metadata of the fragments that arrived from the runners (agents.fragment.FragmentMeta)."""
    delivered: list[dict[str, float]] = field(default_factory=list)
    """The learner's receipt of each delivery that completed: fragments, steps, bytes."""


def deliver_now(waiting: int, num_runners: int, sampling: set[int]) -> bool:
    """Pass the `waiting` fragments to the learner now, or wait for more?

    Now once there is one per runner, or when a runner has no request left to work on
    (`sampling` holds the runners with one in progress): its free slot comes only from a
    consumed fragment, so waiting longer would leave it idle.
    """
    return waiting >= num_runners or len(sampling) < num_runners


class SamplingStream:
    """Runners sampling with fixed weights, every fragment delivered to one learner actor.

    Built by `RayFarm.sampling_stream()`; do not mix `poll()` with the farm's `iterate()`,
    which counts the same in-flight slots. `RayFarm.close()` ends both.
    """

    def __init__(self, pool: RunnerPool, learner: Any, version: int, weights_ref: Any) -> None:
        self._pool, self._learner = pool, learner
        self._version, self._weights_ref = version, weights_ref
        self._consumes: dict[Any, list[Request]] = {}  # consume future -> the requests it delivers
        self._undelivered: list[Request] = []  # arrived, not yet passed to the learner

    def inflight(self) -> int:
        """Fragments requested and not yet received by the learner, over all runners."""
        return self._pool.inflight()

    def poll(self, timeout_s: float) -> StreamEvents:
        """Top the runners up, wait up to `timeout_s` for a fragment or a receipt, hand the
        learner what should go now; empty events if nothing came in time."""
        pool = self._pool
        pool.top_up(self._version, self._weights_ref)
        waiting = list(pool.pending) + list(self._consumes)
        if not ray.wait(waiting, num_returns=1, timeout=max(timeout_s, 0.0))[0]:
            return StreamEvents()
        ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)  # all that are there
        arrivals = pool.collect(ready)  # the receipts among them are not requests: skipped
        self._undelivered += arrivals
        sampling = {request.runner_index for request in pool.pending.values()}
        if self._undelivered and deliver_now(len(self._undelivered), len(pool.actors), sampling):
            refs = [request.fragment_ref for request in self._undelivered]
            self._consumes[self._learner.consume.remote(*refs)] = self._undelivered
            self._undelivered = []
        done = [ref for ref in ready if ref in self._consumes]
        receipts = ray.get(done) if done else []  # counts, not data
        for ref in done:
            pool.release(self._consumes.pop(ref))
        return StreamEvents([request.meta for request in arrivals], receipts)
