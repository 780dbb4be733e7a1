"""Start an embedded local Ray, or join a running cluster.

`start_ray(address)` is the one place the farm calls `ray.init`:

- no address and no $RAY_ADDRESS: an embedded single-node Ray with all of this machine's
  CPUs, no dashboard, and Ray's token authentication left as Ray sets it (Ray 2.60 turns
  it on by default for a new local cluster and writes ~/.ray/auth_token; we never disable it).
  Every port it opens is bound to 127.0.0.1 (`ray_private.loopback_only`), and its processes die with
  the driver, even a SIGKILLed one (cluster/reaper.py).
  The start is made lean by patching a few private Ray functions for the length of
  `ray.init` (see `ray_private.lean_patches`): they only leave out or deprioritise processes that a
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
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlfarm.cluster import ray_private
from rlfarm.cluster.ray_private import LOOPBACK

logger = logging.getLogger(__name__)

AUTH_MODE_ENV_VAR = "RAY_AUTH_MODE"
PLAIN_RAY_ENV_VAR = "RLFARM_PLAIN_RAY"
"""Set to 1 to start the embedded Ray exactly as Ray does: no patches, no private system config."""

EMBEDDED_SYSTEM_CONFIG = {"free_objects_period_milliseconds": 100, "enable_metrics_collection": False}
"""Ray frees released objects in batches, by default once a second: at millions of env steps
per second that keeps dozens of consumed fragments in the store beside the live ones. A
100 ms period keeps the store near the backpressure bound (docs/results/performance.md has the
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
                ray_private.kill_autoscaler_monitor()
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
              log_to_driver: bool = True, runtime_env: dict | None = None) -> RaySession:
    """Connect this process to Ray (see the module docstring for the three cases).

    runtime_env: when joining a cluster, the job's Ray runtime_env (the user's code that
    `rlfarm train --address` ships, cluster/launch/ship.py); an embedded Ray ignores it."""
    import ray

    if ray.is_initialized():
        return RaySession(address=gcs_address(), owned=False, embedded=False, start_s=0.0)

    target = resolve_address(address)
    # Worker processes import rlfarm from the installed package; only the user's code ships.
    common: dict[str, Any] = dict(log_to_driver=log_to_driver, configure_logging=True,
                                  logging_level=logging.WARNING)
    if threading.current_thread() is not threading.main_thread():
        # `rlfarm train` starts Ray on a thread and handles SIGTERM itself in the main thread.
        logging.getLogger(ray_private.WORKER_LOGGER).addFilter(_NoSigtermWarning())
    started = time.perf_counter()
    if target is not None:
        if os.environ.get(AUTH_MODE_ENV_VAR) is None and _token_available():
            os.environ[AUTH_MODE_ENV_VAR] = "token"
        if runtime_env:
            common["runtime_env"] = runtime_env
        ray.init(address=target, **common)  # include_dashboard is only valid when starting one
        return RaySession(address=gcs_address(), owned=True, embedded=False,
                          start_s=time.perf_counter() - started)
    common.update(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                  _node_ip_address=LOOPBACK)
    with ray_private.loopback_only():
        lean, calls = _start_embedded(common)
    from rlfarm.cluster.reaper import start_reaper

    return RaySession(address=gcs_address(), owned=True, embedded=True,
                      start_s=time.perf_counter() - started, lean=lean, patch_calls=calls,
                      reaper=start_reaper())


def _start_embedded(init_kwargs: dict[str, Any]) -> tuple[bool, dict[str, int]]:
    """`ray.init` under the lean patches, or plainly; returns (lean, calls per patch)."""
    import ray

    if plain_ray_requested():
        logger.info("%s is set: starting Ray without rlfarm's start-up patches", PLAIN_RAY_ENV_VAR)
        ray.init(**init_kwargs)
        return False, {}
    calls: collections.Counter[str] = collections.Counter()
    patches = ray_private.lean_patches()
    children_before = _child_pids()
    try:
        with ray_private.patched(patches, calls):
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


class _NoSigtermWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def gcs_address() -> str:
    import ray

    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # older Ray without gcs_address on the runtime context
        return "unknown"
