"""Fixtures for the Ray farm tests: one Ray session per test module."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_local():
    """An embedded local Ray for the whole module, shut down after its last test.

    4 logical CPUs on the 2-core CI machine, so that 2 runners and 1-2 learners (1 CPU
    each) are all scheduled at once, as they are on a laptop-sized embedded run.
    """
    import ray

    from cluster.ray_session import start_ray

    if ray.is_initialized():  # a previous module's session leaked: start clean
        ray.shutdown()
    session = start_ray(num_cpus=4)
    yield session
    session.close()
