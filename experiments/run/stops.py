"""How a run stops on signals and deadlines: the first Ctrl-C, SIGTERM or SIGUSR1 stops after the
current update, the second at once, and a stop that does not come by itself (a hung env step,
a silent farm) is forced (docs/robustness.md).

How it is forced depends on the farm. The serial farm runs the env in the main thread, so
SIGALRM raises there. A farm whose waits are sliced (`farm.polls_stops`, Ray mode) is never
interrupted by a signal: a handler that raises inside `ray.wait` corrupts the call (Ray
reports a SystemError, and the run would end "crashed" without its checkpoint). There the
handlers only set flags, and the farm's waits call `poll_stop` between their slices, which
raises in plain Python code."""
from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlfarm.cluster.farm_base import Farm

STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "sigterm", signal.SIGUSR1: "requeue"}
"""The signals that stop a run cleanly, and the exit_reason each gives (see EXIT_CODES).
SIGUSR1 is SLURM's warning before a time limit (`rlfarm slurm --requeue`)."""
STOP_GRACE_S = 10.0
"""After the first stop signal, the iteration in progress gets this long to end by itself;
then it is interrupted (in the main thread, by SIGALRM) and the run stops."""
WALL_GRACE_S = 5.0
"""stop.wall_s: an iteration still running this long after the deadline is interrupted."""
MAX_DEADLINE_S = 10.0 * 365 * 86400
"""Deadlines further away are clipped to this (ten years): setitimer overflows near 2**31 s."""
UPDATE_RECHECK_S = 0.5
"""An interruption due while the serial farm's learner updates waits for the update's end,
looking again this often: a half-done update is never checkpointed."""


class StopDeadline(BaseException):
    """A stop that was due did not come by itself (a hung env step, a silent farm): raised in
    the main thread by SIGALRM. A BaseException, so an env's `except Exception` cannot count
    it as an env error."""


class SignalStops:
    """The signal handling of Training (a mixin): it sets `stop_signal` and arms deadlines.
    The class using it provides `stop_signal`, `_deadline_at` and `_deadline_reason`."""

    stop_signal: str | None
    _deadline_at: float
    _deadline_reason: str
    _signal_deadlines = True
    """False while a farm that polls (`polls_stops`) runs: deadlines are then polled, not signalled."""
    _stop_now = False
    """A second stop signal came while deadlines are polled: the next poll stops at once."""

    # ---- signals: the first Ctrl-C or SIGTERM stops after the current update -----------
    def _install_signal_handlers(self, farm: Farm) -> dict[int, Any]:
        """STOP_SIGNALS ask for a stop (twice: stop now); SIGALRM enforces the deadlines."""
        import threading

        if getattr(farm, "polls_stops", False):
            self._signal_deadlines = False
            farm.stop_poll = self.poll_stop
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def request_stop(signum: int, frame: Any) -> None:
            if self.stop_signal:  # asked twice: stop now (the batch script repeats USR1)
                if signum == signal.SIGUSR1:
                    return
                if not self._signal_deadlines:
                    self._stop_now = True  # raised by the next poll, outside Ray's calls
                    return
                raise KeyboardInterrupt
            self.stop_signal = STOP_SIGNALS[signum]
            self._arm_deadline(STOP_GRACE_S, self.stop_signal)
            print(f"\nrlfarm train: stopping after this update, in {STOP_GRACE_S:.0f} s at the latest "
                  "(again to stop at once)", file=sys.stderr)

        def deadline_passed(signum: int, frame: Any) -> None:
            if getattr(farm, "updating", False):
                signal.setitimer(signal.ITIMER_REAL, UPDATE_RECHECK_S)
                return
            raise StopDeadline(self._deadline_reason)

        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, request_stop)
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, deadline_passed)
        return previous

    def _arm_deadline(self, seconds: float, reason: str) -> None:
        """Raise StopDeadline(reason) `seconds` from now, unless an earlier deadline is armed:
        by SIGALRM in the main thread, or at the farm's next poll (`poll_stop`) where it polls.
        A serial farm outside the main thread has neither: the loop's own checks apply."""
        import threading

        seconds = min(max(seconds, 0.001), MAX_DEADLINE_S)
        at = time.monotonic() + seconds
        if at < self._deadline_at:
            self._deadline_at, self._deadline_reason = at, reason
            if self._signal_deadlines and threading.current_thread() is threading.main_thread():
                signal.setitimer(signal.ITIMER_REAL, seconds)

    def poll_stop(self, updating: bool = False) -> None:
        """Called by a polling farm between the slices of its waits: raises KeyboardInterrupt
        after a second stop signal, StopDeadline once a deadline passed (not while the learner
        updates: the update ends first, so no half-done update is checkpointed)."""
        if self._stop_now:
            raise KeyboardInterrupt
        if not updating and time.monotonic() >= self._deadline_at:
            raise StopDeadline(self._deadline_reason)

    def _restore_signal_handlers(self, previous: dict[int, Any]) -> None:
        self._signal_deadlines, self._stop_now = True, False
        self._deadline_at = float("inf")
        if signal.SIGALRM in previous:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
