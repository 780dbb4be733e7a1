"""RayFarm: runners and learners as Ray actors; the driver routes fragment references.

The data path: a runner's `sample()` puts a Fragment into the object store and returns a
small FragmentMeta beside it; the driver reads the metadata only (policy version, steps,
episode stats), and hands the fragment's ObjectRef to the learner actor, which Ray
resolves from the object store. `ray.get` is never called on a fragment here.

Pacing (the learner sets it): every fragment a runner was asked for holds one of that
runner's `max_inflight` slots until the learner has consumed it or it was dropped, so at
most num_runners x max_inflight fragments exist at once and the object store stays bounded.
- PPO (sync): a batch is the first fragments to arrive that were made with the current
  policy version; the driver asks for no more than the batch still needs, so a fast runner
  takes a slow runner's share and nothing is wasted; stale fragments (after a restart or a
  resume) are dropped and counted.
- APPO (async): every runner is kept at `max_inflight` requests, so it samples while the
  learner updates; fragments more than `max_lag` versions old are dropped and counted.
- SAC, DQN (off-policy): as APPO, but no fragment is too old for the replay buffer. The
  learner runs `algo.updates_per_step` gradient steps per env step it consumes, so while it
  updates the runners fill their slots and then wait: the learner paces the farm, and the
  env steps sampled run ahead of those consumed by at most the fragments in flight.
Dead runners are replaced on their own seed stream (cluster/runner_pool.py).
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
import ray

from rlfarm.agents.fragment import FragmentMeta
from rlfarm.cluster import ray_private
from rlfarm.cluster.actors import LearnerActor
from rlfarm.cluster.config import FarmConfig
from rlfarm.cluster.farm_base import Farm
from rlfarm.cluster.memory import rss_mb
from rlfarm.cluster.placement import actor_options, check_fits, check_total_cpus, cpu_demand
from rlfarm.cluster.ray_session import start_ray
from rlfarm.cluster.runner_pool import WAIT_SLICE_S, Request, RunnerPool, WeightsLost
from rlfarm.cluster.sampling_stream import SamplingStream
from rlfarm.cluster.store_gauge import ObjectStoreGauge

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.envs.config import EnvConfig

logger = logging.getLogger(__name__)


SAVE_TIMEOUT_S = 120.0
"""A checkpoint the learner has not written this long after it was asked is given up (the
run then ends with the last one written): a hung learner cannot hold a stop forever."""


class LearnerDiedError(RuntimeError):
    """The learner actor died; the run cannot continue. The message names the last checkpoint."""


class RayNodeDiedError(LearnerDiedError):
    """The embedded Ray's raylet (its node) died, and the learner with it."""


class RayFarm(Farm):
    """Same API as SerialFarm: iterate(), save_checkpoint(), load_checkpoint(), close()."""

    polls_stops = True  # every wait of the loop is sliced (WAIT_SLICE_S) and polls stop_poll

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, farm_cfg: FarmConfig,
                 seed: int, total_env_steps: int | None, runtime_env: dict | None = None) -> None:
        super().__init__(env_cfg, policy_cfg, algo_cfg, farm_cfg, seed, total_env_steps)
        # Joins the Ray this process is already connected to (a test fixture, a Ray Job)
        # without owning it; otherwise starts or joins one and shuts it down in close().
        self.session = start_ray(
            farm_cfg.address, num_cpus=max(os.cpu_count() or 1, math.ceil(cpu_demand(farm_cfg))),
            runtime_env=runtime_env)
        self.last_checkpoint: str | None = None
        self.lost_fragments = 0
        """Fragments lost with a batch whose objects vanished (a node lost after sampling)."""
        self.max_inflight_seen = 0
        """The most fragments that existed at once during the run (the backpressure bound)."""
        self._closed = False
        self._ready: deque[Request] = deque()  # arrived, not yet in a batch
        self._gauge = ObjectStoreGauge()
        self._runner_gauges: dict[int, dict[str, float]] = {}  # runner -> its latest per-runner gauges
        world = max(1, int(farm_cfg.num_learners))
        self.batch_fragments = math.ceil(self.batch_env_steps / self.steps_per_fragment)
        self.batch_fragments = world * math.ceil(self.batch_fragments / world)  # equal shares
        slots = farm_cfg.num_runners * farm_cfg.max_inflight
        if self.batch_fragments > slots:  # a batch's fragments hold their slots until the update
            raise ValueError(
                f"max_inflight: a batch needs {self.batch_fragments} fragments but only num_runners x "
                f"max_inflight = {slots} can be in flight; set farm.max_inflight >= "
                f"{math.ceil(self.batch_fragments / farm_cfg.num_runners)} or a smaller farm.batch_size")
        check_total_cpus(farm_cfg)
        runner_opts = check_fits(actor_options(farm_cfg.runner_resources, "farm.runner_resources"),
                                 "farm.runner_resources")
        self.checked_nodes: list[str] = []
        """Nodes whose preflight passed (cluster/node_check.py); joined clusters only."""
        if not self.session.embedded:  # an embedded Ray is this machine, which the driver checked
            from rlfarm.cluster.node_check import check_nodes

            try:
                self.checked_nodes = check_nodes(env_cfg, runner_opts)
            except BaseException:
                self._closed = True  # no runners or learners yet: only the Ray connection to end
                self.session.close()
                raise
        try:
            self.pool = RunnerPool(env_cfg, policy_cfg, farm_cfg, seed, runner_opts, algo_cfg=algo_cfg)
            self.pool.on_wait_slice = self._poll_stop
            self._start_learners(algo_cfg, total_env_steps)
            self.pool.check_started()  # a runner without an env is reported as such
            self._publish_weights()
        except ray.exceptions.RayActorError as err:  # an actor died while the farm started
            if self.session.embedded and not ray_private.raylet_alive():
                self.close()
                raise RayNodeDiedError(f"the embedded Ray's raylet died while the farm started (the node, "
                                       f"not an actor: {type(err).__name__}); no checkpoint was written") from None
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        self._last_iterate = time.perf_counter()

    # ---- setup ---------------------------------------------------------------------------
    def _start_learners(self, algo_cfg: AlgoConfig, total_env_steps: int | None) -> None:
        options = check_fits(actor_options(self.farm_cfg.learner_resources, "farm.learner_resources"),
                             "farm.learner_resources")
        world = max(1, int(self.farm_cfg.num_learners))
        spaces_ref = self.pool.actors[0].spaces.remote()  # fetched by the learner, after its imports
        remote = ray.remote(LearnerActor).options(max_restarts=0, **options)
        self.learners = [remote.remote([spaces_ref], self.policy_cfg, algo_cfg,
                                       total_env_steps=total_env_steps, seed=self.seed,
                                       rank=rank, world_size=world)
                         for rank in range(world)]
        if world > 1:
            master = ray.get(self.learners[0].rendezvous_address.remote())
            ray.get([learner.join_group.remote(*master) for learner in self.learners])

    # ---- the loop ------------------------------------------------------------------------
    def iterate(self) -> dict[str, Any]:
        self._check_open()
        gather_start = time.perf_counter()
        arrived: list[FragmentMeta] = []
        while True:
            batch = self._gather(arrived)
            inflight_at_update = self.pool.inflight()
            self.max_inflight_seen = max(self.max_inflight_seen, inflight_at_update)
            lags = [self.version - r.meta.policy_version for r in batch]
            update_start = time.perf_counter()
            try:
                results = self._update(batch)
                break
            except ray.exceptions.ObjectLostError as err:  # a runner's node went with its fragments
                logger.warning("fragments of this batch were lost (%s); gathering another", err)
                self.lost_fragments += len(batch)
                self.pool.release(batch)
        update_end = time.perf_counter()
        self.pool.release(batch)
        self._set_weights(results[0])
        metas = [r.meta for r in batch]
        result = self.iteration_result(metas, results[0]["metrics"],
                                       update_start - gather_start, update_end - update_start)
        wall = max(update_end - self._last_iterate, 1e-9)
        self._last_iterate = update_end
        result.update(self._perf_metrics(arrived, metas, results, lags, wall, inflight_at_update))
        return result

    def _gather(self, arrived: list[FragmentMeta]) -> list[Request]:
        """The first `batch_fragments` fresh fragments to arrive (no barrier on any runner)."""
        # Every gather, also one filled from fragments already here: the other runners'
        # deliveries must not hide a silent runner.
        self.pool.replace_silent()
        batch: list[Request] = []
        while len(batch) < self.batch_fragments:
            while self._ready and len(batch) < self.batch_fragments:
                request = self._ready.popleft()
                if self.is_stale(request.meta.policy_version, self.version):
                    self.dropped_fragments += 1
                    self.pool.release([request])
                else:
                    batch.append(request)
            if len(batch) >= self.batch_fragments:
                break
            self._request_more(still_needed=self.batch_fragments - len(batch))
            self.max_inflight_seen = max(self.max_inflight_seen, self.pool.inflight())
            try:
                arrivals = self.pool.wait_arrivals()
            except WeightsLost as err:
                raise self._learner_died(err) from err
            for request in arrivals:
                arrived.append(request.meta)
                self._ready.append(request)
        self.runner_restarts = self.pool.restarts
        self.runner_timeouts = self.pool.timeouts
        return batch

    def _request_more(self, still_needed: int) -> None:
        if self.is_appo or self.is_off_policy:
            self.pool.top_up(self.version, self.weights_ref)
        else:  # PPO: only as many current-version requests as the batch still needs
            outstanding = self.pool.outstanding(version=self.version)
            self.pool.top_up(self.version, self.weights_ref, limit=still_needed - outstanding)

    def _update(self, batch: list[Request]) -> list[dict[str, Any]]:
        refs = [request.fragment_ref for request in batch]
        world = len(self.learners)
        if world == 1:  # the common case: no torch import in the driver (ddp imports it)
            futures = [self.learners[0].update.remote(*refs)]
        else:
            from rlfarm.cluster import ddp

            futures = [learner.update.remote(*ddp.share(refs, rank, world))
                       for rank, learner in enumerate(self.learners)]
        self._wait_update(futures)
        return self._call_learner(futures)

    def _poll_stop(self, updating: bool = False) -> None:
        if self.stop_poll is not None:
            self.stop_poll(updating=updating)

    def _wait_update(self, futures: list[Any]) -> None:
        """Wait for the learners' update in WAIT_SLICE_S slices, polling for stops (which
        let the update end: a deadline that falls in one waits for it, as in serial mode)."""
        pending = list(futures)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=WAIT_SLICE_S)
            if pending:
                self._poll_stop(updating=True)

    def _set_weights(self, published: dict[str, Any]) -> None:
        self.version = int(published["version"])
        self.weights_ref = published["weights"][0]

    def _publish_weights(self) -> None:
        self._set_weights(self._call_learner(self.learners[0].publish.remote()))

    def acting_weights(self) -> dict[str, Any]:
        """The published weights from the object store (numpy: the driver needs no torch)."""
        return ray.get(self.weights_ref, timeout=SAVE_TIMEOUT_S)

    # ---- metrics -------------------------------------------------------------------------
    def _perf_metrics(self, arrived: list[FragmentMeta], metas: list[FragmentMeta], results: list[dict],
                      lags: list[int], wall: float, inflight: int) -> dict[str, float]:
        consumed = sum(m.num_steps for m in metas)
        out: dict[str, float] = {
            "perf/env_steps_per_s": consumed / wall,
            "perf/env_steps_sampled_per_s": sum(m.num_steps for m in arrived) / wall,
            "perf/inflight_fragments": float(inflight),
            "perf/inflight_fragments_max": float(self.max_inflight_seen),
            "perf/policy_lag_mean": float(np.mean(lags)) if lags else 0.0,
            "perf/policy_lag_max": float(np.max(lags)) if lags else 0.0,
            "perf/dropped_fragments": float(self.dropped_fragments),
            "perf/lost_fragments": float(self.lost_fragments + self.pool.lost_fragments),
            "perf/runner_restarts": float(self.runner_restarts),
            "perf/runner_timeouts": float(self.runner_timeouts),
            "perf/fragment_mb": float(np.mean([m.nbytes for m in metas])) / 1e6,
            "perf/learner_update_ms": float(np.mean([r["update_ms"] for r in results])),
            "system/rss_mb/driver": rss_mb(),
        }
        out.setdefault("perf/learner_samples_per_s", consumed / max(out["perf/learner_update_ms"] / 1e3, 1e-9))
        for key in ("perf/learner_samples_per_s", "perf/learner_update_ms"):
            if key in results[0]["metrics"]:
                out[key] = float(results[0]["metrics"][key])
        store = self._gauge.read()
        out["perf/object_store_mb"] = store["used_mb"]
        out["perf/object_store_spilled_mb"] = store["spilled_mb"]
        for meta in arrived or metas:
            runner = meta.runner_id
            self._runner_gauges[runner] = {
                f"perf/env_step_ms/runner_{runner}": meta.env_ms / meta.horizon,
                f"perf/inference_ms/runner_{runner}": meta.inference_ms / meta.horizon,
                f"system/rss_mb/runner_{runner}": meta.rss_mb}
        for gauges in self._runner_gauges.values():  # every runner's latest reading, each report
            out.update(gauges)
        sampled = arrived or metas
        out["perf/env_step_ms"] = float(np.mean([m.env_ms / m.horizon for m in sampled]))
        out["perf/inference_ms"] = float(np.mean([m.inference_ms / m.horizon for m in sampled]))
        for rank, result in enumerate(results):
            out[f"system/rss_mb/learner_{rank}"] = result["rss_mb"]
        if "system/gpu_mem_gb" in results[0]:
            out["system/gpu_mem_gb"] = results[0]["system/gpu_mem_gb"]
        if "gpu_energy_j" in results[0] and self.env_steps:
            out["system/gpu_joules_per_million_steps"] = results[0]["gpu_energy_j"] / self.env_steps * 1e6
        return out

    # ---- checkpoints and shutdown --------------------------------------------------------
    def _call_learner(self, future: Any, timeout_s: float | None = None) -> Any:
        """ray.get on learner futures; a dead learner ends the run naming the last checkpoint,
        and one that does not answer within `timeout_s` (when given) raises TimeoutError."""
        try:
            return ray.get(future, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError as err:
            raise TimeoutError(f"the learner did not answer within {timeout_s:.0f} s") from err
        except ray.exceptions.RayActorError as err:
            raise self._learner_died(err) from err

    def _learner_died(self, err: Exception) -> LearnerDiedError:
        where = self.last_checkpoint or "none was written yet"
        if self.session.embedded and not ray_private.raylet_alive():
            return RayNodeDiedError(f"the embedded Ray's raylet died (the node, not the learner: "
                                    f"{type(err).__name__}); last checkpoint: {where}")
        return LearnerDiedError(f"the learner actor died ({type(err).__name__}); last checkpoint: {where}")

    def _save_learner(self, path: str, extra: dict[str, Any], with_replay: bool = False) -> None:
        self._call_learner(self.learners[0].save_checkpoint.remote(os.path.abspath(path), extra, with_replay),
                           timeout_s=SAVE_TIMEOUT_S)
        self.last_checkpoint = os.path.abspath(path)

    def _load_learner(self, path: str) -> dict[str, Any]:
        path = os.path.abspath(path)
        extras = self._call_learner([learner.load_checkpoint.remote(path) for learner in self.learners])
        self.last_checkpoint = path
        return extras[0]

    def object_store_stats(self, force: bool = False) -> dict[str, float]:
        """{"used_mb", "spilled_mb", "spilled_objects"} of the cluster's object store."""
        return self._gauge.read(force=force)

    def sampling_stream(self) -> SamplingStream:
        """The runners sampling with the current weights and the learner discarding what they
        make, with no updates: the hook through which benchmarks measure the farm."""
        self._check_open()
        return SamplingStream(self.pool, self.learners[0], self.version, self.weights_ref)

    def runner_pids(self) -> list[int]:
        """The runner actors' process ids, in runner order."""
        return self.pool.pids()

    def learner_pids(self) -> list[int]:
        return ray.get([learner.pid.remote() for learner in self.learners])

    def placements(self) -> dict[str, Any]:
        """Where every actor runs: {"runners": [...], "learners": [...]} of node_placement dicts."""
        return {"runners": self.pool.placements(),
                "learners": ray.get([learner.placement.remote() for learner in self.learners])}

    def placement_record(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Placements plus every runner replacement and where the replacement ran; actors that
        do not answer within `timeout_s` (a lost node) are recorded as unknown."""
        refs = {"runners": [a.placement.remote() for a in self.pool.actors],
                "learners": [learner.placement.remote() for learner in self.learners]}
        record: dict[str, Any] = {role: [_get_or_unknown(ref, timeout_s) for ref in role_refs]
                                  for role, role_refs in refs.items()}
        record["replacements"] = [
            {"runner": r["runner"], "reason": r["reason"],
             "placement": _get_or_unknown(r["placement_ref"], timeout_s)} for r in self.pool.replacements]
        record["lost_fragments"] = self.lost_fragments + self.pool.lost_fragments
        return record

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RayFarm: iterate() after close()")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        if hasattr(self, "pool"):
            self.pool.close()
        for learner in getattr(self, "learners", []):
            ray.kill(learner, no_restart=True)
        self.learners = []
        self.session.close()


def _get_or_unknown(ref: Any, timeout_s: float) -> dict[str, Any]:
    try:
        return ray.get(ref, timeout=timeout_s)
    except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as err:
        return {"unknown": type(err).__name__}

