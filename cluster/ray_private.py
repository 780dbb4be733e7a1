"""Every use of Ray's private API, behind one door, gated by Ray's version.

Ray has no public API for what these do; each is a speed or hygiene measure that the farm
works without. So every function here checks `private_ray_supported()` (the Ray versions
that pyproject.toml's tests ran on), degrades to "do nothing" or "unknown" when a private
point moved, and never raises into the farm:

- `loopback_only()`: keep the embedded Ray's node address at 127.0.0.1 (security: no port of
  the embedded Ray listens beyond this machine);
- `lean_patches()` / `patched()`: the embedded start's patches (docs/results/performance.md,
  "Ray's start", has what each saves; only those that save at least half a second are kept);
- `kill_autoscaler_monitor()`: a second off `ray.shutdown()`;
- `raylet_alive()`: tells a dead raylet from a dead actor, for the error message;
- `object_store_stats()`: the farm/object_store_mb gauge (the call behind `ray memory`);
- `WORKER_LOGGER`, `AUTH_TOKEN_LOGGER`: the private loggers whose lines rlfarm folds.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Callable, Counter, Iterator

logger = logging.getLogger(__name__)

TESTED_RAY = ((2, 40), (2, 60))
"""The oldest and newest Ray (major, minor) whose private points below were checked. Outside
this range rlfarm uses Ray's public API only: a plain start, no gauges."""
WORKER_LOGGER = "ray._private.worker"
AUTH_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def private_ray_supported() -> bool:
    """True when the installed Ray is within TESTED_RAY (False: public API only)."""
    import ray

    try:
        version = tuple(int(part) for part in ray.__version__.split(".")[:2])
    except ValueError:  # a dev build ("3.0.0.dev0" parses; "master" does not)
        return False
    return TESTED_RAY[0] <= version <= TESTED_RAY[1]


LOOPBACK = "127.0.0.1"
"""The embedded Ray's node address: Ray binds its gRPC servers (GCS, raylet, every worker),
the runtime-env agent and the dashboard agent to 127.0.0.1 when the node's address is it."""


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Keep `_node_ip_address=127.0.0.1` as given while `ray.init` runs.

    `ray.init` swaps a loopback node address for the machine's reachable one unless Ray
    thinks clusters are disabled (its Windows/macOS default); we say so for the length of
    the start. This is not one of the lean patches: it holds with RLFARM_PLAIN_RAY=1 too.
    A Ray without the flag starts as Ray does; `start_ray`'s callers can check
    `ray.util.get_node_ip_address()`, and the loopback test fails loudly.
    """
    try:
        from ray._private import ray_constants
    except ImportError:
        ray_constants = None
    if not private_ray_supported() or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        yield
        return
    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


Patch = tuple[str, Any, str, Callable[[Any], Any]]
"""("Owner.attribute", owner, attribute, a function of the original returning its replacement)."""

PATCH_NAMES = ("Node.start_api_server", "utils.get_dashboard_dependency_error",
                "services.get_node", "services.start_log_monitor", "services.start_monitor")


def lean_patches() -> list[Patch]:
    """What the embedded start replaces, each for a reason that holds on any machine:

    - `Node.start_api_server`: with the dashboard off, Ray still starts an API server with
      one module (UsageStatsHead: no Jobs, no State API) and waits for it before it starts
      the raylet. We do not start it.
    - `utils.get_dashboard_dependency_error`: `ray.init` decides the dashboard agent's mode
      by importing the dashboard's optional dependencies in the driver (aiohttp,
      OpenTelemetry), and the raylet waits for the agent. Answering "missing" runs the
      minimal agent, Ray's mode for an install without them: fewer imports, no metrics
      export (nothing scrapes it).
    - `services.get_node`: `ray.init` waits for the raylet to register with a call that
      retries about once a second; we poll the node table every 20 ms first.
    - `services.start_log_monitor`, `services.start_monitor`: the raylet registers once its
      dashboard and runtime-env agents are up, and those start beside these two monitors.
      The monitors run at nice 19 from their start: nothing waits for them, and later they
      need little CPU (forwarding worker logs; nothing to scale on one node).

    A point that this Ray does not have is left out (said once at INFO); a Ray outside
    TESTED_RAY gets none.
    """
    if not private_ray_supported():
        logger.info("Ray %s is outside the versions rlfarm's start-up patches were tested on "
                    "(%s): starting it as Ray does", _ray_version(), _tested_range())
        return []
    owners: dict[str, Any] = {}
    for label, module, attribute in (("Node", "ray._private.node", "Node"),
                                     ("utils", "ray._private.utils", None),
                                     ("services", "ray._private.services", None)):
        try:
            imported = __import__(module, fromlist=["_"])
            owners[label] = getattr(imported, attribute) if attribute else imported
        except (ImportError, AttributeError):
            pass
    replacements: dict[str, Callable[[Any], Any]] = {
        "Node.start_api_server": lambda original: _skip,
        "utils.get_dashboard_dependency_error": lambda original: _dashboard_dependencies_missing,
        "services.get_node": _polling_get_node,
        "services.start_log_monitor": _lowest_priority,
        "services.start_monitor": _lowest_priority,
    }
    patches, missing = [], []
    for name in PATCH_NAMES:
        label, attribute = name.split(".")
        owner = owners.get(label)
        if owner is None or not callable(getattr(owner, attribute, None)):
            missing.append(name)
            continue
        patches.append((name, owner, attribute, replacements[name]))
    if missing:
        logger.info("this Ray has no %s: rlfarm leaves that part of its start as Ray does it",
                    ", ".join(missing))
    return patches


def _skip(*args: Any, **kwargs: Any) -> None:
    return None


def _dashboard_dependencies_missing() -> ImportError:
    return ImportError("rlfarm's embedded Ray runs the minimal dashboard agent")


@contextlib.contextmanager
def patched(patches: list[Patch], calls: Counter[str]) -> Iterator[None]:
    """Install `patches` (each counting its calls into `calls`); always put Ray's own back."""
    originals = [(owner, attribute, getattr(owner, attribute)) for _, owner, attribute, _ in patches]
    try:
        for name, owner, attribute, make_replacement in patches:
            setattr(owner, attribute, _counted(make_replacement(getattr(owner, attribute)), name, calls))
        yield
    finally:
        for owner, attribute, original in originals:
            setattr(owner, attribute, original)


def _counted(function: Callable[..., Any], name: str, calls: Counter[str]) -> Callable[..., Any]:
    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return function(*args, **kwargs)

    return counting


def _lowest_priority(start_process: Any) -> Any:
    """`start_process` (returning Ray's ProcessInfo), with the process it starts at nice 19."""

    def started_nice(*args: Any, **kwargs: Any) -> Any:
        info = start_process(*args, **kwargs)
        try:
            os.setpriority(os.PRIO_PROCESS, info.process.pid, 19)
        except (AttributeError, OSError) as err:  # not POSIX, or the process already gone
            logger.info("could not lower a Ray process's priority: %s", err)
        return info

    return started_nice


def _polling_get_node(get_node: Any) -> Any:
    """`services.get_node`, called once the node table shows the node alive."""

    def polled(gcs_address: str, node_id: str, *args: Any, **kwargs: Any) -> Any:
        try:
            from ray._private import services
            from ray._private.state import GlobalState

            state = GlobalState()
            state._initialize_global_state(services._get_gcs_client_options(gcs_address))
            try:
                deadline = time.monotonic() + 30.0  # Ray's own raylet_start_wait_time_s
                while time.monotonic() < deadline and not any(
                        node["NodeID"] == node_id and node["Alive"] for node in state.node_table()):
                    time.sleep(0.02)
            finally:
                state.disconnect()
        except Exception as err:  # noqa: BLE001 - a private API: fall back to Ray's own wait
            logger.info("node table poll failed, waiting the Ray way: %s", err)
        return get_node(gcs_address, node_id, *args, **kwargs)

    return polled


def kill_autoscaler_monitor() -> None:
    """SIGKILL the embedded Ray's autoscaler monitor before `ray.shutdown()`.

    `ray.shutdown()` sends each Ray process SIGTERM and waits up to 1 s for it; the
    autoscaler monitor always uses the whole second. A one-node embedded Ray has nothing
    for it to scale or save. Private API: if it moves, shutdown just takes the extra second.
    """
    if not private_ray_supported():
        return
    try:
        from ray._private import ray_constants, worker

        for info in worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
            info.process.kill()
            info.process.wait(timeout=5)
    except Exception as err:  # noqa: BLE001
        logger.info("could not stop Ray's autoscaler monitor early: %s", err)




def raylet_alive() -> bool:
    """False when this process's embedded raylet has exited (True when unknown)."""
    if not private_ray_supported():
        return True
    try:
        from ray._private import ray_constants, worker

        infos = worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET, [])
        return not infos or all(info.process.poll() is None for info in infos)
    except Exception:  # noqa: BLE001 - a private point that moved: say nothing about the raylet
        return True


def object_store_stats(gcs_address: str, state: Any = None) -> tuple[dict[str, float], Any]:
    """({used_mb, spilled_mb, spilled_objects}, the connection to reuse next time), read from a
    raylet through the call behind `ray memory --stats-only`. Raises where Ray has no such
    call (outside TESTED_RAY, or moved): the gauge then shows NaN."""
    if not private_ray_supported():
        raise RuntimeError(f"Ray {_ray_version()} is outside {_tested_range()}: no object store gauge")
    from ray._private import internal_api

    if state is None:
        state = internal_api.get_state_from_address(gcs_address)
    stats = internal_api.get_memory_info_reply(state, timeout_seconds=5.0).store_stats
    return ({"used_mb": stats.object_store_bytes_used / 1e6, "spilled_mb": stats.spilled_bytes_total / 1e6,
             "spilled_objects": int(stats.spilled_objects_total)}, state)


def _ray_version() -> str:
    import ray

    return ray.__version__


def _tested_range() -> str:
    (low_major, low_minor), (high_major, high_minor) = TESTED_RAY
    return f"{low_major}.{low_minor}-{high_major}.{high_minor}"
