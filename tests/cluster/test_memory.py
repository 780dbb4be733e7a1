"""rss_mb, the one memory gauge: a process's own memory, not the shared object store's."""
from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from rlfarm.cluster.memory import rss_mb

SIZE = 64 * 2**20


def _vm_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024 / 1e6


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_rss_mb_counts_private_memory_and_leaves_out_shared_memory():
    before = rss_mb()
    private = np.ones(SIZE // 8)  # touched: resident
    grown = rss_mb() - before
    assert grown >= 0.9 * SIZE / 1e6, grown

    shared = mmap.mmap(-1, SIZE, flags=mmap.MAP_SHARED)  # like the object store's mapping
    vm_before, own_before = _vm_rss_mb(), rss_mb()
    shared.write(b"\1" * SIZE)
    assert _vm_rss_mb() - vm_before >= 0.9 * SIZE / 1e6  # plain RSS counts it...
    assert rss_mb() - own_before < 0.25 * SIZE / 1e6  # ...the gauge does not
    shared.close()
    del private


def test_the_driver_and_the_actors_report_the_same_gauge():
    from rlfarm.cluster import actors, ray_farm
    from rlfarm.experiments.report import monitor

    assert actors.rss_mb is ray_farm.rss_mb is monitor.rss_mb is rss_mb
