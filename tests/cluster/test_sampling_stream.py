"""The farm's sampling stream (the benchmarks' hook): when arrived fragments go to the learner.

The stream itself runs end to end in tests/experiments/bench/test_farm_sampling.py."""
from __future__ import annotations

import pytest

pytest.importorskip("ray")

from rlfarm.cluster.sampling_stream import deliver_now  # noqa: E402


def test_deliveries_group_one_fragment_per_runner_unless_a_runner_would_idle():
    assert deliver_now(waiting=1, num_runners=1, sampling={0})  # one runner: every fragment
    assert not deliver_now(waiting=1, num_runners=2, sampling={0, 1})  # both busy: wait for the other
    assert deliver_now(waiting=2, num_runners=2, sampling={0, 1})
    assert deliver_now(waiting=3, num_runners=2, sampling={0, 1})
    # runner 1 has no request left: its slots free up only when the learner consumes
    assert deliver_now(waiting=1, num_runners=2, sampling={0})
    assert deliver_now(waiting=1, num_runners=4, sampling={0, 1, 3})
