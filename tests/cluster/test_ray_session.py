"""The embedded Ray that `start_ray()` starts: lean, working, and leaving Ray's code as it was."""
from __future__ import annotations

import os
import time

import pytest

ray = pytest.importorskip("ray")

from rlfarm.cluster.ray_private import private_ray_supported  # noqa: E402

pytestmark = pytest.mark.skipif(not private_ray_supported(), reason="the lean start's patches apply to the Ray "
                                "versions in cluster/ray_private.py's TESTED_RAY only")


def _ray_commands() -> list[str]:
    """Command lines of this machine's processes that belong to Ray."""
    commands = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                command = stream.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ray" in command:
            commands.append(command)
    return commands


@pytest.fixture(scope="module")
def embedded():
    """This module's own embedded Ray, started the way `rlfarm train` starts it."""
    import ray

    from rlfarm.cluster import ray_session

    if ray.is_initialized():
        ray.shutdown()
    from ray._private import services
    from ray._private import utils as ray_utils
    from ray._private.node import Node

    before = (Node.start_api_server, ray_utils.get_dashboard_dependency_error, services.get_node,
              services.start_log_monitor, services.start_monitor)
    session = ray_session.start_ray(num_cpus=2)
    yield session, before
    session.close()


def test_embedded_ray_runs_tasks(embedded):
    import ray

    session, _ = embedded
    assert session.embedded and session.owned and session.start_s > 0

    @ray.remote
    def square(value: int) -> int:
        return value * value

    assert ray.get([square.remote(value) for value in range(4)]) == [0, 1, 4, 9]
    assert ray.cluster_resources()["CPU"] == 2


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads command lines from /proc (Linux)")
def test_embedded_ray_leaves_out_the_api_server_and_runs_the_minimal_agent(embedded):
    import ray

    # This session's processes only: on a shared machine other Rays (a `ray start`, a SLURM
    # job's head) run full dashboards of their own.
    gcs = ray.get_runtime_context().gcs_address
    commands = [command for command in _ray_commands() if f"--gcs-address={gcs}" in command]
    agents = [command for command in commands if "dashboard/agent.py" in command]
    assert agents, "no dashboard agent running"
    assert all("--minimal" in command for command in agents)
    assert not [command for command in commands if "dashboard/dashboard.py" in command]


def test_embedded_ray_gets_the_system_config(embedded):
    """Released objects freed every 100 ms, and no metrics collection (nothing scrapes it)."""
    import ray

    config = ray._private.state.state.get_system_config()
    assert config["free_objects_period_milliseconds"] == 100
    assert config["enable_metrics_collection"] is False


def test_start_leaves_the_embedded_config_as_it_was(embedded):
    # ray.init writes its spilling settings into the dict it is given; had it been ours, the
    # next embedded start in this process would spill into the previous session's folder.
    from rlfarm.cluster.ray_session import EMBEDDED_SYSTEM_CONFIG

    assert set(EMBEDDED_SYSTEM_CONFIG) == {"free_objects_period_milliseconds", "enable_metrics_collection"}


def test_start_puts_rays_own_functions_back(embedded):
    from ray._private import services
    from ray._private import utils as ray_utils
    from ray._private.node import Node

    _, before = embedded
    assert (Node.start_api_server, ray_utils.get_dashboard_dependency_error, services.get_node,
            services.start_log_monitor, services.start_monitor) == before


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads niceness from /proc (Linux)")
def test_rays_monitors_run_at_the_lowest_priority(embedded):
    """The raylet waits for its agents, not for the log and autoscaler monitors: those two
    yield the CPU to the agents while Ray starts."""
    from ray._private import ray_constants, worker

    processes = worker._global_node.all_processes
    monitors = [info.process.pid for kind in (ray_constants.PROCESS_TYPE_LOG_MONITOR,
                                              ray_constants.PROCESS_TYPE_MONITOR)
                for info in processes.get(kind, [])]
    assert len(monitors) == 2
    for pid in monitors:
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
    raylet = processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    assert os.getpriority(os.PRIO_PROCESS, raylet) == os.getpriority(os.PRIO_PROCESS, 0)


def test_polling_get_node_returns_rays_answer(embedded):
    import ray

    from rlfarm.cluster.ray_private import _polling_get_node

    calls = []

    def rays_get_node(gcs_address: str, node_id: str) -> dict:
        calls.append((gcs_address, node_id))
        return {"node_id": node_id}

    node_id = ray.get_runtime_context().get_node_id()
    gcs_address = ray.get_runtime_context().gcs_address
    started = time.perf_counter()
    assert _polling_get_node(rays_get_node)(gcs_address, node_id) == {"node_id": node_id}
    assert calls == [(gcs_address, node_id)]
    assert time.perf_counter() - started < 5.0  # a registered node: no wait (generous bound)


def test_ray_init_called_every_patched_function(embedded):
    """Each patch was on Ray's start path (counted through the patch): none is dead code."""
    from rlfarm.cluster.ray_private import PATCH_NAMES

    session, _ = embedded
    assert session.lean
    assert set(session.patch_calls) == set(PATCH_NAMES)
    assert all(calls >= 1 for calls in session.patch_calls.values()), session.patch_calls
