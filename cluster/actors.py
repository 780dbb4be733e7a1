"""Ray actor wrappers of the plain Runner and LearnerWorker classes.

Ray stays at this edge: the classes in runner.py / learner.py know nothing of it.

- `RunnerActor.sample` returns two objects (`num_returns=2`): a small FragmentMeta the
  driver reads (policy version, steps, episode stats, timings) and the Fragment, which the
  driver only passes on, by reference, to the learner. Its arrays over 1 MiB travel in
  1 MiB chunks and arrive as views of the store all the same (cluster/wire.py).
- Weights travel as an ObjectRef wrapped in a list (so Ray does not resolve it on every
  call): a runner fetches it only when the version is newer than the one it acts with.
- `LearnerActor.update(*fragment_refs)` gets the fragments resolved by Ray straight from
  the object store, updates, and `ray.put`s the new weights once, returning the ref.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import ray

from rlfarm.agents.fragment import FragmentMeta
from rlfarm.cluster.memory import rss_mb

if TYPE_CHECKING:
    from rlfarm.agents.config import AlgoConfig, PolicyConfig
    from rlfarm.envs.config import EnvConfig

logger = logging.getLogger(__name__)


class HeapTrimmer:
    """Give freed heap back to the OS at most every `interval_s` (glibc's malloc_trim).

    The learner allocates and frees batch-sized buffers on every update, and glibc keeps
    the freed memory of a worker thread's arena: RSS then climbs for minutes although
    nothing leaks. Trimming keeps RSS equal to what is in use, so a real leak shows.
    """

    def __init__(self, interval_s: float = 1.0):
        self.interval_s, self._last = interval_s, 0.0
        try:
            import ctypes

            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
            self._trim = None

    def __call__(self) -> None:
        now = time.monotonic()
        if self._trim is not None and now - self._last >= self.interval_s:
            self._last = now
            self._trim(0)


class RunnerActor:
    """A Runner in its own process. Created with `ray.remote(RunnerActor).options(...)`."""

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, *, seed: int, runner_index: int,
                 fragment_length: int, artificial_lag: int = 0,
                 algo_cfg: AlgoConfig | None = None, num_runners: int = 1) -> None:
        from rlfarm.cluster import wire
        from rlfarm.cluster.runner import Runner

        wire.register()  # the fragments this actor returns travel in 1 MiB chunks
        # One torch thread per runner (where the policy acts in torch): runners scale by
        # processes, and extra threads fight the env for the same core.
        if policy_cfg.acts_in_torch:
            import torch

            torch.set_num_threads(1)
        from rlfarm.envs.failures import EnvStartError

        self.start_error: EnvStartError | None = None
        """Why this runner could not make its env; the driver asks with `started()`."""
        try:
            self.runner = Runner(env_cfg, policy_cfg, seed=seed, runner_index=runner_index,
                                 fragment_length=fragment_length, artificial_lag=artificial_lag,
                                 algo_cfg=algo_cfg, num_runners=num_runners)
        except EnvStartError as err:  # kept for the driver, not a dead actor in Ray's log
            self.start_error = err
        self.runner_index = runner_index
        self._seen_version = None  # newest published version this runner has fetched

    def started(self) -> Any:
        """None when the env was made, else the EnvStartError describing why not."""
        return self.start_error

    def spaces(self) -> tuple[Any, Any]:
        if self.start_error is not None:
            raise self.start_error
        return self.runner.spaces

    def pid(self) -> int:
        return os.getpid()

    def placement(self) -> dict[str, Any]:
        from rlfarm.cluster.placement import node_placement

        return node_placement()

    def close(self) -> None:
        """Close the env (an external simulator's programs and their helpers end with it)."""
        if self.start_error is None:
            self.runner.close()

    def sample(self, version: int, weights_box: list) -> tuple[FragmentMeta, Any]:
        """One Fragment, acting with the published weights of `version`: `weights_box` holds
        their ref, or is empty when an earlier call already carried this version."""
        if weights_box and weights_box[0] is not None and version != self._seen_version:
            weights = ray.get(weights_box[0])
            # Own copies: arrays from ray.get are read-only views that pin the object in the
            # store for as long as the runner keeps them (it keeps a few for artificial_lag).
            weights["params"] = {name: np.array(value) for name, value in weights["params"].items()}
            self.runner.set_weights(weights)
            self._seen_version = version
        started, started_cpu = time.perf_counter(), time.thread_time()
        fragment = self.runner.sample()
        sample_ms = 1000.0 * (time.perf_counter() - started)
        sample_cpu_ms = 1000.0 * (time.thread_time() - started_cpu)
        # sample_cpu_ms: this thread's CPU in Runner.sample, the sampling benchmark's accounting
        meta = FragmentMeta.of(fragment, sample_ms=sample_ms, sample_cpu_ms=sample_cpu_ms, rss_mb=rss_mb())
        return meta, fragment


class LearnerActor:
    """A LearnerWorker in its own process; rank `rank` of `world_size` data-parallel learners."""

    def __init__(self, spaces_box: list, policy_cfg: PolicyConfig, algo_cfg: AlgoConfig, *,
                 total_env_steps: int | None, seed: int, rank: int = 0, world_size: int = 1) -> None:
        """`spaces_box` = [ref of runner 0's `spaces()`, i.e. (obs_space, action_space)]. In a
        list, Ray does not wait for it before calling this, so torch's import
        runs while the runners are still starting; the spaces are fetched after it."""
        import torch

        from rlfarm.cluster.learner import LearnerWorker, set_torch_threads

        set_torch_threads()
        device = getattr(algo_cfg, "device", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
            if ray.get_gpu_ids() and device == "cpu":
                warnings.warn("learner: Ray assigned a GPU but torch sees no CUDA device; "
                              "training on CPU", RuntimeWarning, stacklevel=2)
        elif device == "cuda" and not torch.cuda.is_available():
            warnings.warn("learner: algo.device=cuda but no CUDA device is visible; training on CPU",
                          RuntimeWarning, stacklevel=2)
            device = "cpu"
        self.device = device
        if total_env_steps and world_size > 1:
            # Each rank consumes its share, so its lr schedule runs on its share of the total.
            total_env_steps = total_env_steps // world_size
        spaces = ray.get(spaces_box[0])
        self.worker = LearnerWorker(*spaces, policy_cfg, algo_cfg,
                                    total_env_steps=total_env_steps, device=device, seed=seed)
        self.rank, self.world_size = rank, world_size
        self._in_group = False
        self._trim_heap = HeapTrimmer()
        self._energy_mj0 = _gpu_energy_mj() if device == "cuda" else None

    # ---- data parallel -------------------------------------------------------------------
    def rendezvous_address(self) -> tuple[str, int]:
        """Rank 0's (ip, free port) for the process group."""
        from rlfarm.cluster import ddp  # torch.distributed: only data-parallel learners need it

        return ray.util.get_node_ip_address(), ddp.free_port()

    def join_group(self, master_addr: str, master_port: int) -> bool:
        """Join the learners' group, copy rank 0's parameters, then average from now on."""
        from rlfarm.cluster import ddp

        ddp.init_group(self.rank, self.world_size, master_addr, master_port,
                       backend=ddp.pick_backend(self.device))
        learner = self.worker.learner
        ddp.broadcast_tensors_(learner.model.parameters())
        ddp.broadcast_tensors_(learner.model.buffers())
        # agents/ calls these hooks inside update(): after backward (before the grad clip),
        # and before the batch's obs moments join the normalizer.
        learner.grad_sync = ddp.average_gradients  # called with the list of parameters
        learner.moments_sync = lambda mean, var, count: ddp.merge_moments(mean, var, count, self.device)
        self._in_group = True
        return True

    def parameters_equal(self) -> bool:
        """All ranks hold identical parameters (a collective: call it on every rank)."""
        from rlfarm.cluster import ddp

        return ddp.all_equal(self.worker.learner.model.parameters())

    # ---- training ------------------------------------------------------------------------
    def update(self, *fragments: Any) -> dict[str, Any]:
        """Update on `fragments` (resolved by Ray from the object store); publish new weights."""
        started = time.perf_counter()
        metrics = self.worker.update(list(fragments))
        update_ms = 1000.0 * (time.perf_counter() - started)
        self._trim_heap()
        result: dict[str, Any] = {"metrics": dict(metrics), "version": self.worker.version,
                                  "update_ms": update_ms, "rss_mb": rss_mb()}
        if self.rank == 0:
            result["weights"] = [ray.put(self.worker.get_weights())]
        result.update(self._gpu_stats())
        return result

    def consume(self, *fragments: Any) -> dict[str, float]:
        """Receive fragments and discard them (the sampling benchmark's learner).

        On CUDA the arrays are copied to the device first, as an update would, so the
        figure includes the host-to-device transfer."""
        if self.device == "cuda":
            import torch

            with warnings.catch_warnings():
                # The arrays are read-only views of the object store; the copy only reads them.
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                for fragment in fragments:
                    for name in ("obs", "actions", "logp", "values", "rewards"):
                        torch.as_tensor(getattr(fragment, name)).to(self.device, non_blocking=True)
            torch.cuda.synchronize()
        return {"fragments": len(fragments),
                "steps": sum(f.num_steps for f in fragments),
                "bytes": sum(int(f.nbytes) for f in fragments), "rss_mb": rss_mb()}

    def publish(self) -> dict[str, Any]:
        """The current weights, put once; used at start and after loading a checkpoint."""
        return {"version": self.worker.version, "weights": [ray.put(self.worker.get_weights())]}

    def save_checkpoint(self, path: str, extra: dict[str, Any], with_replay: bool = False) -> str:
        return self.worker.save_checkpoint(path, extra, with_replay)

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        return self.worker.load_checkpoint(path)

    def weights(self) -> dict:
        return self.worker.get_weights()

    def pid(self) -> int:
        return os.getpid()

    def placement(self) -> dict[str, Any]:
        from rlfarm.cluster.placement import node_placement

        return {**node_placement(), "device": self.device}

    def close(self) -> None:
        if self._in_group:
            from rlfarm.cluster import ddp

            ddp.destroy_group()
            self._in_group = False

    def _gpu_stats(self) -> dict[str, float]:
        if self.device != "cuda":
            return {}
        import torch

        stats = {"system/gpu_mem_gb": torch.cuda.max_memory_allocated() / 1e9}
        energy = _gpu_energy_mj()
        if energy is not None and self._energy_mj0 is not None:
            stats["gpu_energy_j"] = (energy - self._energy_mj0) / 1000.0
        return stats


def _gpu_energy_mj() -> float | None:
    """Total energy of this actor's GPU in millijoules via NVML, or None where pynvml is absent."""
    try:
        import pynvml

        pynvml.nvmlInit()
        gpu_ids = ray.get_gpu_ids()  # physical index: Ray narrows CUDA_VISIBLE_DEVICES, not NVML
        handle = pynvml.nvmlDeviceGetHandleByIndex(int(gpu_ids[0]) if gpu_ids else 0)
        return float(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except Exception:
        return None
