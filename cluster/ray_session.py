"""Start an embedded local Ray, or join a running cluster.

`start_ray(address)` is the one place the farm calls `ray.init`:

- no address and no $RAY_ADDRESS: an embedded single-node Ray with all of this machine's
  CPUs, no dashboard, and Ray's token authentication left as Ray sets it (Ray 2.60 turns
  it on by default for a new local cluster and writes ~/.ray/auth_token; we never disable it).
  Every port it opens is bound to 127.0.0.1 (`_loopback_only`), and its processes die with
  the driver, even a SIGKILLed one (cluster/reaper.py).
  The start is made lean by patching a few private Ray functions for the length of
  `ray.init` (see `_lean_patches`): they only leave out or deprioritise processes that a
  one-process run never uses. Those patches can never stop a start:
  - `RLFARM_PLAIN_RAY=1` turns every one of them off (and the private system config too);
  - a private point that Ray no longer has is left alone, and said once at INFO;
  - if `ray.init` fails under the patches, Ray's own functions are put back and a plain
    start is tried, with one INFO line saying so.
- an address (argument or $RAY_ADDRESS): join that cluster. Ray only auto-enables token
  auth for `address="auto"`, so when a token is present and RAY_AUTH_MODE is unset we set
  RAY_AUTH_MODE=token ourselves; a cluster started with `ray start --head` (token mode by
  default) then accepts us.
- Ray already initialized in this process (a test fixture, a Ray Job driver): reuse it and
  leave it running on exit.

Only the session that started Ray shuts it down. The private points were checked against
the Ray versions that pyproject.toml allows.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

logger = logging.getLogger(__name__)

AUTH_MODE_ENV_VAR = "RAY_AUTH_MODE"
PLAIN_RAY_ENV_VAR = "RLFARM_PLAIN_RAY"
"""Set to 1 to start the embedded Ray exactly as Ray does: no patches, no private system config."""

EMBEDDED_SYSTEM_CONFIG = {"free_objects_period_milliseconds": 100, "enable_metrics_collection": False}
"""Ray frees released objects in batches, by default once a second: at millions of env steps
per second that keeps dozens of consumed fragments in the store beside the live ones. A
100 ms period keeps the store near the backpressure bound (docs/performance.md has the
figures). Metrics collection is off: nothing scrapes the embedded Ray's metrics, and
collecting them costs every Ray process CPU on every task."""


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
    lean: bool = False
    """True when the embedded Ray started under rlfarm's patches (False: a plain start)."""
    reaper: Any = None
    """The embedded Ray's reaper process (cluster/reaper.py), told to stand down on close."""
    patch_calls: dict[str, int] = field(default_factory=dict)
    """How often `ray.init` called each patched function ("owner.name" -> calls)."""

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            if self.lean:
                _kill_autoscaler_monitor()
            ray.shutdown()
        self.owned = False
        if self.reaper is not None:
            from rlfarm.cluster.reaper import stand_down

            stand_down(self.reaper)
            self.reaper = None

    def __enter__(self) -> "RaySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plain_ray_requested() -> bool:
    """True when $RLFARM_PLAIN_RAY asks for Ray's own start (any value but '', 0, false, no)."""
    return os.environ.get(PLAIN_RAY_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


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
    # Worker processes import rlfarm from the installed package, so no runtime_env packaging.
    common: dict[str, Any] = dict(log_to_driver=log_to_driver, configure_logging=True,
                                  logging_level=logging.WARNING)
    if threading.current_thread() is not threading.main_thread():
        # `rlfarm train` starts Ray on a thread and handles SIGTERM itself in the main thread.
        logging.getLogger("ray._private.worker").addFilter(_NoSigtermWarning())
    started = time.perf_counter()
    if target is not None:
        if os.environ.get(AUTH_MODE_ENV_VAR) is None and _token_available():
            os.environ[AUTH_MODE_ENV_VAR] = "token"
        ray.init(address=target, **common)  # include_dashboard is only valid when starting one
        return RaySession(address=_gcs_address(), owned=True, embedded=False,
                          start_s=time.perf_counter() - started)
    common.update(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                  _node_ip_address=LOOPBACK)
    with _loopback_only():
        lean, calls = _start_embedded(common)
    from rlfarm.cluster.reaper import start_reaper

    return RaySession(address=_gcs_address(), owned=True, embedded=True,
                      start_s=time.perf_counter() - started, lean=lean, patch_calls=calls,
                      reaper=start_reaper())


LOOPBACK = "127.0.0.1"
"""The embedded Ray's node address: Ray binds its gRPC servers (GCS, raylet, every worker),
the runtime-env agent and the dashboard agent to 127.0.0.1 when the node's address is it."""


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
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
    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        yield
        return
    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


def _start_embedded(init_kwargs: dict[str, Any]) -> tuple[bool, dict[str, int]]:
    """`ray.init` under the lean patches, or plainly; returns (lean, calls per patch)."""
    import ray

    if plain_ray_requested():
        logger.info("%s is set: starting Ray without rlfarm's start-up patches", PLAIN_RAY_ENV_VAR)
        ray.init(**init_kwargs)
        return False, {}
    calls: collections.Counter[str] = collections.Counter()
    patches = _lean_patches()
    children_before = _child_pids()
    try:
        with _patched(patches, calls):
            # ray.init adds its spilling settings to the dict it is given: pass a copy.
            ray.init(_system_config=dict(EMBEDDED_SYSTEM_CONFIG), **init_kwargs)
    except Exception as err:  # noqa: BLE001 - any failure under the patches: try Ray's own start
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        logger.info("Ray did not start with rlfarm's start-up patches (%s%s); Ray's own functions "
                    "are back, starting it plainly (%s=1 skips the patches)",
                    type(err).__name__, f": {reason}" if reason else "", PLAIN_RAY_ENV_VAR)
        _clean_up_failed_start(children_before)
        ray.init(**init_kwargs)
        return False, {}
    unused = [name for name, *_ in patches if not calls[name]]
    if unused:
        logger.info("Ray's start did not call the patched %s: this Ray version starts differently, "
                    "so that part of the lean start does nothing", ", ".join(unused))
    return True, dict(calls)


def _clean_up_failed_start(children_before: set[int]) -> None:
    """Undo what a failed `ray.init` left: its connection, and the Ray processes it started
    before failing (a half-built node is not known to `ray.shutdown`)."""
    import ray

    try:
        ray.shutdown()
    except Exception as err:  # noqa: BLE001 - cleaning up after a failed start
        logger.info("cleaning up after the failed Ray start: %s", err)
    for pid in _child_pids() - children_before:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                is_ray = b"ray" in stream.read()
            if is_ray:
                os.kill(pid, 9)
        except OSError:  # already gone
            pass


def _child_pids() -> set[int]:
    """This process's children (Linux /proc; elsewhere none are found)."""
    me, children = os.getpid(), set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stream:
                parent = int(stream.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == me:
            children.add(int(entry))
    return children


Patch = tuple[str, Any, str, Callable[[Any], Any]]
"""("Owner.attribute", owner, attribute, a function of the original returning its replacement)."""

_PATCH_NAMES = ("Node.start_api_server", "utils.get_dashboard_dependency_error",
                "services.get_node", "services.start_log_monitor", "services.start_monitor")


def _lean_patches() -> list[Patch]:
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

    A point that this Ray does not have is left out (said once at INFO).
    """
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
    for name in _PATCH_NAMES:
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
def _patched(patches: list[Patch], calls: collections.Counter[str]) -> Iterator[None]:
    """Install `patches` (each counting its calls into `calls`); always put Ray's own back."""
    originals = [(owner, attribute, getattr(owner, attribute)) for _, owner, attribute, _ in patches]
    try:
        for name, owner, attribute, make_replacement in patches:
            setattr(owner, attribute, _counted(make_replacement(getattr(owner, attribute)), name, calls))
        yield
    finally:
        for owner, attribute, original in originals:
            setattr(owner, attribute, original)


def _counted(function: Callable[..., Any], name: str, calls: collections.Counter[str]) -> Callable[..., Any]:
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


def _kill_autoscaler_monitor() -> None:
    """SIGKILL the embedded Ray's autoscaler monitor before `ray.shutdown()`.

    `ray.shutdown()` sends each Ray process SIGTERM and waits up to 1 s for it; the
    autoscaler monitor always uses the whole second. A one-node embedded Ray has nothing
    for it to scale or save. Private API: if it moves, shutdown just takes the extra second.
    """
    try:
        from ray._private import ray_constants, worker

        for info in worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
            info.process.kill()
            info.process.wait(timeout=5)
    except Exception as err:  # noqa: BLE001
        logger.info("could not stop Ray's autoscaler monitor early: %s", err)


class _NoSigtermWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _gcs_address() -> str:
    import ray

    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # older Ray without gcs_address on the runtime context
        return "unknown"
