"""Start an embedded local Ray, or join a running cluster.

`ray_session(address)` is the one place the farm calls `ray.init`:

- no address and no $RAY_ADDRESS: an embedded single-node Ray with all of this machine's
  CPUs, no dashboard, and Ray's token authentication left as Ray sets it (Ray 2.60 turns
  it on by default for a new local cluster and writes ~/.ray/auth_token; we never disable it).
  Two of Ray's processes that cost seconds and do nothing for a one-process run are left
  out: the usage-stats API server at start, the autoscaler monitor's 1 s grace at shutdown;
  the log and autoscaler monitors run at nice 19 (see `_lean_embedded_start`).
- an address (argument or $RAY_ADDRESS): join that cluster. Ray only auto-enables token
  auth for `address="auto"`, so when a token is present and RAY_AUTH_MODE is unset we set
  RAY_AUTH_MODE=token ourselves; a cluster started with `ray start --head` (token mode by
  default) then accepts us.
- Ray already initialized in this process (a test fixture, a Ray Job driver): reuse it and
  leave it running on exit.

Only the session that started Ray shuts it down.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

AUTH_MODE_ENV_VAR = "RAY_AUTH_MODE"
EMBEDDED_SYSTEM_CONFIG = {"free_objects_period_milliseconds": 100, "enable_metrics_collection": False}
"""Ray frees released objects in batches, by default once a second: at 2M env steps/s that
keeps some 35 consumed fragments (100 MB) in the store beside the 4 live ones. A 100 ms
period keeps the store at the backpressure bound (measured: 11.2 MB for 4 fragments of
2.8 MB, against 50-115 MB with Ray's default). Metrics collection is off: nothing scrapes
the embedded Ray's metrics, and collecting them costs every Ray process CPU on every task."""


@dataclass
class RaySession:
    """What `start_ray` did, so that `close` undoes exactly that."""

    address: str
    """The GCS address of the cluster we are connected to."""
    owned: bool
    """True when this session started Ray (and so shuts it down on close)."""
    embedded: bool
    """True for a local Ray started by this process (no address given)."""
    start_s: float
    """Seconds `ray.init` took (0 when Ray was already up)."""

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            if self.embedded:
                _kill_autoscaler_monitor()
            ray.shutdown()
        self.owned = False

    def __enter__(self) -> "RaySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if token_path:
        return Path(token_path).expanduser().is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def resolve_address(address: str | None) -> str | None:
    """The cluster to join: the argument, else $RAY_ADDRESS, else None (embedded)."""
    if address:
        return address
    env_address = os.environ.get("RAY_ADDRESS", "").strip()
    return env_address or None


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              log_to_driver: bool = True) -> RaySession:
    """Connect this process to Ray (see the module docstring for the three cases)."""
    import ray

    if ray.is_initialized():
        return RaySession(address=_gcs_address(), owned=False, embedded=False, start_s=0.0)

    target = resolve_address(address)
    # Worker processes import rlfarm from the installed (editable) package, so no runtime_env
    # packaging is needed: that keeps start-up at Ray's own ~2 s.
    common = dict(include_dashboard=False, log_to_driver=log_to_driver,
                  configure_logging=True, logging_level=logging.WARNING)
    import threading

    if threading.current_thread() is not threading.main_thread():
        # `rlfarm train` starts Ray on a thread and handles SIGTERM itself in the main thread.
        logging.getLogger("ray._private.worker").addFilter(_NoSigtermWarning())
    started = time.perf_counter()
    if target is None:
        with _lean_embedded_start():
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(),
                     _system_config=dict(EMBEDDED_SYSTEM_CONFIG), **common)  # ray.init adds to it
        embedded = True
    else:
        if os.environ.get(AUTH_MODE_ENV_VAR) is None and _token_available():
            os.environ[AUTH_MODE_ENV_VAR] = "token"
        # include_dashboard is only valid when starting a cluster.
        common.pop("include_dashboard")
        ray.init(address=target, **common)
        embedded = False
    elapsed = time.perf_counter() - started
    return RaySession(address=_gcs_address(), owned=True, embedded=embedded, start_s=elapsed)


@contextlib.contextmanager
def _lean_embedded_start():
    """Start the embedded Ray without what a one-run private cluster never uses, and
    without waiting longer than its processes take to come up.

    - The API-server process. With the dashboard off, Ray still starts it with one module,
      UsageStatsHead (`--modules-to-load=UsageStatsHead`: no Jobs, no State API), and
      `ray.init` waits for it before it starts the raylet: 0.8-1.7 s of a 3-4 s start on
      our 2-core machine.
    - The dashboard agent's full mode. `ray.init` decides it by importing the dashboard's
      optional dependencies in the driver (aiohttp, OpenTelemetry: 0.4-0.7 s of CPU), and
      the raylet waits for the agent before it registers. The minimal agent (Ray's mode
      for an install without them) imports less and exports no metrics; nothing here
      scrapes them.
    - The wait for the raylet to register. `ray.init` asks the GCS for the node with a
      call that retries about once a second: the raylet registered 0.8 s before
      `ray.init` noticed, in one traced start. We poll the node table every 20 ms first.
    - The CPU for what the raylet waits on. The raylet registers once its dashboard agent
      and runtime-env agent are up, and those two start beside Ray's log monitor and
      autoscaler monitor, four Python processes on our two cores. The two monitors run at
      the lowest priority (nice 19) from their start: nothing waits for them, and they
      need little CPU later (forwarding worker logs; nothing to scale on one node).

    Private APIs: whichever of these moves, Ray does that part as usual.
    """
    try:
        from ray._private import services
        from ray._private import utils as ray_utils
        from ray._private.node import Node

        patches = [(Node, "start_api_server", lambda self, **kwargs: None),
                   (ray_utils, "get_dashboard_dependency_error",
                    lambda: ImportError("rlfarm's embedded Ray runs the minimal dashboard agent")),
                   (services, "get_node", _polling_get_node(services.get_node)),
                   (services, "start_log_monitor", _lowest_priority(services.start_log_monitor)),
                   (services, "start_monitor", _lowest_priority(services.start_monitor))]
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    except (ImportError, AttributeError):
        yield
        return
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _lowest_priority(start_process: Any) -> Any:
    """`start_process` (returning Ray's ProcessInfo), with the process it starts at nice 19."""

    def started_nice(*args: Any, **kwargs: Any) -> Any:
        info = start_process(*args, **kwargs)
        try:
            os.setpriority(os.PRIO_PROCESS, info.process.pid, 19)
        except (AttributeError, OSError) as err:  # not POSIX, or the process already gone
            logger.debug("could not lower a Ray process's priority: %s", err)
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
            logger.debug("node table poll failed, waiting the Ray way: %s", err)
        return get_node(gcs_address, node_id, *args, **kwargs)

    return polled


def _kill_autoscaler_monitor() -> None:
    """SIGKILL the embedded Ray's autoscaler monitor before `ray.shutdown()`.

    `ray.shutdown()` sends each Ray process SIGTERM and waits up to 1 s for it; the
    autoscaler monitor always uses the whole second (measured: 1.0 of shutdown's 1.1 s).
    A one-node embedded Ray has nothing for it to scale or save. Private API: if it moves,
    shutdown just takes the extra second.
    """
    try:
        from ray._private import ray_constants, worker

        for info in worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
            info.process.kill()
            info.process.wait(timeout=5)
    except Exception as err:  # noqa: BLE001
        logger.debug("could not stop Ray's autoscaler monitor early: %s", err)


class _NoSigtermWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _gcs_address() -> str:
    import ray

    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # older Ray without gcs_address on the runtime context
        return "unknown"


class ObjectStoreGauge:
    """Object store bytes used and spilled, cluster-wide, read from a raylet.

    Ray has no public API for this; we use the call behind `ray memory --stats-only`
    (ray._private.internal_api) and fall back to NaN if it moves. Reads are throttled,
    since each one is a gRPC round trip to the raylet.
    """

    def __init__(self, min_interval_s: float = 1.0):
        self.min_interval_s = min_interval_s
        self._state = None
        self._last_read = -1e9
        self._last = {"used_mb": float("nan"), "spilled_mb": float("nan"), "spilled_objects": 0}

    def read(self, force: bool = False) -> dict[str, float]:
        now = time.monotonic()
        if not force and now - self._last_read < self.min_interval_s:
            return dict(self._last)
        self._last_read = now
        try:
            from ray._private import internal_api

            if self._state is None:
                self._state = internal_api.get_state_from_address(_gcs_address())
            stats = internal_api.get_memory_info_reply(self._state, timeout_seconds=5.0).store_stats
            self._last = {"used_mb": stats.object_store_bytes_used / 1e6,
                          "spilled_mb": stats.spilled_bytes_total / 1e6,
                          "spilled_objects": int(stats.spilled_objects_total)}
        except Exception as err:  # a private API: never let a gauge end a run
            logger.debug("object store stats unavailable: %s", err)
        return dict(self._last)
