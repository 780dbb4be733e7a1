"""The object store's fill, cluster-wide, for the farm's `farm/object_store_mb` gauge."""
from __future__ import annotations

import logging
import threading
import time

from rlfarm.cluster import ray_private
from rlfarm.cluster.ray_session import gcs_address

logger = logging.getLogger(__name__)


class ObjectStoreGauge:
    """Object store bytes used and spilled, cluster-wide, read from a raylet.

    Ray has no public API for this; we use the call behind `ray memory --stats-only`
    (`ray_private.object_store_stats`) and fall back to NaN if it moves. Each reading is a gRPC
    round trip to the raylet that can take seconds when a runner is stopped or the machine is
    loaded, so `read()` never waits for one: it returns the latest reading and, at most every
    `min_interval_s`, starts the next one on a background thread. `read(force=True)` waits
    (tests and benchmarks want the value now).
    """

    def __init__(self, min_interval_s: float = 1.0):
        self.min_interval_s = min_interval_s
        self._state = None
        self._last_read = -1e9
        self._last = {"used_mb": float("nan"), "spilled_mb": float("nan"), "spilled_objects": 0}
        self._reading: threading.Thread | None = None

    def read(self, force: bool = False) -> dict[str, float]:
        if force:
            self._read_now()
            return dict(self._last)
        now = time.monotonic()
        busy = self._reading is not None and self._reading.is_alive()
        if not busy and now - self._last_read >= self.min_interval_s:
            self._last_read = now
            self._reading = threading.Thread(target=self._read_now, name="rlfarm-store-gauge", daemon=True)
            self._reading.start()
        return dict(self._last)

    def _read_now(self) -> None:
        try:
            self._last, self._state = ray_private.object_store_stats(gcs_address(), self._state)
        except Exception as err:  # a private API: never let a gauge end a run
            logger.debug("object store stats unavailable: %s", err)
