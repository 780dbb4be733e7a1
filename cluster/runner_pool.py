"""The runner actors of a RayFarm: sample requests, in-flight slots, and restarts.

Every `sample` request holds one of its runner's `max_inflight` slots from the moment it
is submitted until the driver releases it (the learner consumed the fragment, or it was
dropped), which bounds the fragments alive in the object store at num_runners x max_inflight.

A runner that dies (its process killed, its node lost, an exception escaping `sample`) is
logged and replaced by a fresh actor with the same runner index, hence the same seed
stream; its requests still in flight are lost and counted. Restarts are capped by
`farm.max_runner_restarts`.

A runner that is alive but silent (stopped, or stuck in an env step) is replaced the same
way: every runner with requests outstanding has a clock that starts when it was asked while
idle and restarts at each of its deliveries; past `runner_timeout_s()` it is killed,
replaced, printed and counted in `timeouts` (and in `restarts`). The driver never waits on
Ray for more than `WAIT_SLICE_S` at a time, so these checks (and signals) run on time.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray

from rlfarm.agents.fragment import FragmentMeta
from rlfarm.cluster.actors import RunnerActor
from rlfarm.cluster.config import FarmConfig

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.envs.config import EnvConfig

logger = logging.getLogger(__name__)


WAIT_SLICE_S = 1.0
"""The longest single `ray.wait` of the driver; between slices it checks for silent runners."""
CLOSE_WAIT_S = 5.0
"""How long close() waits for the runners to close their envs before it kills them."""
RUNNER_TIMEOUT_MIN_S = 30.0
"""The automatic `farm.runner_timeout_s` is at least this many seconds ..."""
RUNNER_TIMEOUT_FRAGMENTS = 20
"""... and at least this many times the slowest fragment measured so far."""
START_ALLOWANCE = 3
"""A runner that has not delivered since it started (imports, env construction) gets this
many timeouts."""


class WeightsLost(RuntimeError):
    """A runner could not fetch the published weights because their owner, the learner
    actor that `ray.put` them, died: the learner's failure, not the runner's."""


def _owner_died(err: Exception) -> bool:
    # A task error whose cause is OwnerDiedError is raised as a class deriving from both.
    return isinstance(err, ray.exceptions.OwnerDiedError) or \
        isinstance(getattr(err, "cause", None), ray.exceptions.OwnerDiedError)


class RunnerRestartsExceeded(RuntimeError):
    """More runner deaths than `farm.max_runner_restarts` allows."""


@dataclass
class Request:
    """One `sample()` call: the metadata ref the driver reads, the fragment ref it forwards."""

    runner_index: int
    generation: int
    """Which incarnation of the runner (0, then +1 per restart) was asked."""
    version: int
    """The policy version the weights passed with the request have."""
    meta_ref: Any
    fragment_ref: Any
    meta: FragmentMeta | None = None
    """Filled in when the request arrives."""


class RunnerPool:
    """`num_runners` RunnerActors; the driver's view of what each is doing."""

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, farm_cfg: FarmConfig, seed: int,
                 options: dict[str, Any], stall_timeout_s: float = 600.0,
                 algo_cfg: AlgoConfig | None = None) -> None:
        self.env_cfg, self.policy_cfg, self.farm_cfg, self.seed = env_cfg, policy_cfg, farm_cfg, seed
        self.algo_cfg = algo_cfg
        self.max_inflight = max(1, int(farm_cfg.max_inflight))
        self.stall_timeout_s = stall_timeout_s
        # We restart runners ourselves (a fresh actor on the same seed stream, counted),
        # so Ray's own actor restarts and task retries stay off.
        self._remote = ray.remote(RunnerActor).options(max_restarts=0, max_task_retries=0, **options)
        count = int(farm_cfg.num_runners)
        self.generation = [0] * count
        self.holds = [0] * count
        self.sent_version: list[int | None] = [None] * count  # weights version each actor was sent
        self.busy_since: list[float | None] = [None] * count
        """monotonic time since which each runner owes a fragment (None: nothing asked)."""
        self.delivered = [False] * count  # has the current incarnation delivered yet?
        self.slowest_fragment_s = 0.0
        self.on_wait_slice: Any = None
        """Called between the driver's wait slices (the farm's stop poll; it may raise)."""
        self.actors = [self._spawn(index) for index in range(count)]
        self.pending: dict[Any, Request] = {}  # meta_ref -> request not yet arrived
        self.restarts = 0
        self.timeouts = 0
        """Runners replaced because they were silent longer than `runner_timeout_s()`."""
        self.lost_fragments = 0
        self.replacements: list[dict[str, Any]] = []
        """One entry per replaced runner: {"runner", "reason", "placement_ref"} (the new actor's)."""

    def _spawn(self, index: int) -> Any:
        self.sent_version[index] = None  # a fresh actor has no weights yet
        self.delivered[index] = False
        self.busy_since[index] = None
        return self._remote.remote(self.env_cfg, self.policy_cfg, seed=self.seed, runner_index=index,
                                   fragment_length=self.farm_cfg.fragment_length,
                                   artificial_lag=self.farm_cfg.artificial_lag, algo_cfg=self.algo_cfg,
                                   num_runners=int(self.farm_cfg.num_runners))

    # ---- queries -------------------------------------------------------------------------
    def inflight(self) -> int:
        """Fragments requested and not yet released, over all runners."""
        return sum(self.holds)

    def outstanding(self, version: int | None = None) -> int:
        """Requests not yet arrived (made with `version`, if given)."""
        return sum(1 for r in self.pending.values() if version is None or r.version == version)

    def pids(self) -> list[int]:
        return ray.get([actor.pid.remote() for actor in self.actors])

    def placements(self) -> list[dict[str, Any]]:
        return ray.get([actor.placement.remote() for actor in self.actors])

    def check_started(self) -> None:
        """Wait until every runner has made its env; raise the first one's EnvStartError."""
        for error in ray.get([actor.started.remote() for actor in self.actors]):
            if error is not None:
                raise error

    # ---- requests ------------------------------------------------------------------------
    def top_up(self, version: int, weights_ref: Any, limit: int | None = None) -> int:
        """Submit requests to runners with free slots, least busy first; at most `limit`."""
        submitted = 0
        while limit is None or submitted < limit:
            free = [i for i, held in enumerate(self.holds) if held < self.max_inflight]
            if not free:
                break
            busy = {i: 0 for i in free}
            for request in self.pending.values():
                if request.runner_index in busy:
                    busy[request.runner_index] += 1
            index = min(free, key=lambda i: (busy[i], self.holds[i], i))
            self._submit(index, version, weights_ref)
            submitted += 1
        return submitted

    def _submit(self, index: int, version: int, weights_ref: Any) -> None:
        # The weights ref travels inside a list so Ray does not resolve it on every call, and
        # only to an actor that was not sent this version yet: a ref passed to a task makes
        # the actor a borrower, which costs RPCs with the ref's owner on every call. An
        # actor runs its calls in order, so the call that carries the weights installs them
        # before the calls that follow it.
        box = [] if self.sent_version[index] == version else [weights_ref]
        self.sent_version[index] = version
        meta_ref, fragment_ref = self.actors[index].sample.options(num_returns=2).remote(version, box)
        self.pending[meta_ref] = Request(index, self.generation[index], version, meta_ref, fragment_ref)
        self.holds[index] += 1
        if self.busy_since[index] is None:
            self.busy_since[index] = time.monotonic()

    def wait_arrivals(self) -> list[Request]:
        """Wait until at least one request arrives (or fails) and return those that arrived;
        [] when a silent runner was replaced instead (its requests are gone: ask again)."""
        if not self.pending:
            raise RuntimeError("RayFarm: waiting for fragments, but none were requested")
        started = time.monotonic()
        while True:
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=WAIT_SLICE_S)
            if self.on_wait_slice is not None:  # a stop is delivered here, between Ray calls
                self.on_wait_slice()
            # Checked at every wait, not only at empty ones: the other runners' deliveries must
            # not hide a silent runner.
            replaced = self.replace_silent()
            if ready and self.pending:
                refs = list(self.pending)  # without the replaced runners' requests
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # everything already there
                if ready:
                    return self.collect(ready)
            if replaced:
                return []
            if time.monotonic() - started > self.stall_timeout_s:
                raise RuntimeError(f"RayFarm: no fragment arrived in {self.stall_timeout_s:.0f} s from "
                                   f"{len(self.actors)} runners ({len(refs)} requests in flight); is the "
                                   "cluster short of the resources in farm.runner_resources?")

    def runner_timeout_s(self) -> float:
        """`farm.runner_timeout_s`, or when 0 the automatic one (see the constants above)."""
        configured = float(self.farm_cfg.runner_timeout_s)
        if configured > 0:
            return configured
        return max(RUNNER_TIMEOUT_MIN_S, RUNNER_TIMEOUT_FRAGMENTS * self.slowest_fragment_s)

    def replace_silent(self) -> list[int]:
        """Kill and replace every runner that owes a fragment for longer than its timeout."""
        now, timeout = time.monotonic(), self.runner_timeout_s()
        silent = [index for index, since in enumerate(self.busy_since) if since is not None and
                  now - since > timeout * (1 if self.delivered[index] else START_ALLOWANCE)]
        if silent:  # a fragment that arrived while the driver was busy elsewhere (a long update,
            # a checkpoint) is not silence: it is only not collected yet
            owed = [ref for ref, request in self.pending.items() if request.runner_index in silent
                    and request.generation == self.generation[request.runner_index]]
            arrived, _ = ray.wait(owed, num_returns=len(owed), timeout=0) if owed else ([], [])
            answered = {self.pending[ref].runner_index for ref in arrived}
            silent = [index for index in silent if index not in answered]
        for index in silent:
            waited = now - self.busy_since[index]
            self.timeouts += 1
            self._replace(index, f"silent for {waited:.0f} s (farm.runner_timeout_s={timeout:.0f})", None)
        return silent

    def collect(self, ready_refs: list[Any]) -> list[Request]:
        """The requests behind `ready_refs` (meta refs that `ray.wait` found ready), with their
        metadata read in one `ray.get`; a failed request is handled as its runner's death."""
        requests = [self.pending.pop(ref) for ref in ready_refs if ref in self.pending]
        if not requests:
            return []
        try:
            metas = ray.get([request.meta_ref for request in requests])
        except ray.exceptions.RayError:  # find which ones failed, one by one
            requests = [request for request in requests if self._read_meta(request)]
            self._note_deliveries(requests)
            return requests
        for request, meta in zip(requests, metas):
            request.meta = meta
        self._note_deliveries(requests)
        return requests

    def _note_deliveries(self, requests: list[Request]) -> None:
        now = time.monotonic()
        owing = {request.runner_index for request in self.pending.values()
                 if request.generation == self.generation[request.runner_index]}
        for request in requests:
            index = request.runner_index
            if request.meta is None or request.generation != self.generation[index]:
                continue
            self.delivered[index] = True
            self.busy_since[index] = now if index in owing else None
            self.slowest_fragment_s = max(self.slowest_fragment_s, request.meta.sample_ms / 1000.0)

    def _read_meta(self, request: Request) -> bool:
        try:
            request.meta = ray.get(request.meta_ref)
            return True
        except ray.exceptions.RayError as err:
            if _owner_died(err):
                raise WeightsLost(str(err).strip().splitlines()[0]) from err
            self._runner_failed(request, err)
            return False

    def release(self, requests: list[Request]) -> None:
        """The learner consumed these fragments, or they were dropped: free their slots."""
        for request in requests:
            self.holds[request.runner_index] -= 1

    # ---- failures ------------------------------------------------------------------------
    def _runner_failed(self, request: Request, err: Exception) -> None:
        index = request.runner_index
        self.holds[index] -= 1
        self.lost_fragments += 1
        if request.generation != self.generation[index]:
            return  # an older incarnation's request; that runner was replaced already
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        self._replace(index, f"died ({type(err).__name__}: {reason})", err)

    def _replace(self, index: int, why: str, err: Exception | None) -> None:
        """Kill runner `index` (`why` it goes), drop its requests, start a fresh one on its
        seed stream; RunnerRestartsExceeded past farm.max_runner_restarts."""
        self.restarts += 1
        if self.restarts > int(self.farm_cfg.max_runner_restarts):
            raise RunnerRestartsExceeded(
                f"runner {index} {why} and the run already restarted runners {self.restarts - 1} "
                f"times (farm.max_runner_restarts={self.farm_cfg.max_runner_restarts})") from err
        logger.warning("runner %d %s; starting a fresh one on its seed stream (restart %d of at most %d)",
                       index, why, self.restarts, self.farm_cfg.max_runner_restarts)
        for ref, other in list(self.pending.items()):
            if other.runner_index == index and other.generation == self.generation[index]:
                del self.pending[ref]
                self.holds[index] -= 1
                self.lost_fragments += 1
        ray.kill(self.actors[index], no_restart=True)
        self.generation[index] += 1
        self.actors[index] = self._spawn(index)
        self.replacements.append({"runner": index, "reason": why,
                                  "placement_ref": self.actors[index].placement.remote()})

    def close(self) -> None:
        """Ask every runner to close its env (bounded by CLOSE_WAIT_S: a runner busy in a
        fragment answers after it), then kill them all."""
        self.pending.clear()
        if self.actors:
            try:
                ray.wait([actor.close.remote() for actor in self.actors], num_returns=len(self.actors),
                         timeout=CLOSE_WAIT_S)
            except ray.exceptions.RayError:
                pass
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
