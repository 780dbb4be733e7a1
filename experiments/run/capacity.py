"""Refuse, before anything starts, a farm this machine cannot hold.

`check_capacity(cfg)` estimates from the config and the env's spaces what the farm will
need on this machine and raises ConfigError with the numbers and the limit; `rlfarm train
--force` skips it. It runs for the embedded Ray and serial mode only: a joined cluster
(farm.address or $RAY_ADDRESS) schedules the actors on its own nodes.

The rules (stated in docs/robustness.md):
- cores: the runners' Ray CPUs may be at most RUNNERS_PER_CORE x this machine's cores
  (embedded Ray mode; serial mode steps its runners one at a time);
- memory: every runner holds its env and its fragments, (farm.max_inflight + 1) of them,
  the object store holds the fragments in flight, and an off-policy learner (SAC, DQN) on
  the CPU holds its replay buffer (algo.replay_size transitions, agents.config.replay_bytes);
  the sum must fit in the memory the kernel reports available (MemAvailable).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from rlfarm.experiments.errors import ConfigError

if TYPE_CHECKING:
    from rlfarm.experiments.config import ExperimentConfig

RUNNERS_PER_CORE = 4
"""How far runners may oversubscribe the cores: they wait on the learner part of the time."""
LAYER_BYTES = 8 * 2**10
"""Memory of one torch layer object beyond its parameters (module, parameter tensors, their
Python objects): about 6 KiB measured per Linear + activation pair, rounded up."""
LEARNER_COPIES = 7
"""The learner holds its parameters this many times: weights, gradients, Adam's two moments,
and the snapshot of weights and moments that a non-finite update rolls back to."""
ENV_STATE_PER_OBS = 4
"""An env copy's state is estimated as this many times its observation (float64 state plus
scratch arrays), the rlfarm envs' order of magnitude."""


def check_capacity(cfg: ExperimentConfig, obs_space: Any = None, action_space: Any = None) -> None:
    """ConfigError when `cfg`'s farm needs more cores or memory than this machine has.

    obs_space, action_space: one env copy's spaces, as the preflight's env check read them
    (None: build one copy here to read them).
    """
    if cfg.farm.address or os.environ.get("RAY_ADDRESS"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    runner_cpus = float((cfg.farm.runner_resources or {}).get("num_cpus", 1))
    needed_cpus = cfg.farm.num_runners * runner_cpus
    if cfg.farm.mode == "ray" and needed_cpus > RUNNERS_PER_CORE * cores:
        raise ConfigError(f"farm.num_runners={cfg.farm.num_runners} needs {needed_cpus:g} CPUs; this machine has "
                          f"{cores} (at most {RUNNERS_PER_CORE} runner CPUs per core; --force starts it anyway)")
    per_runner, in_flight = memory_estimate(cfg, obs_space, action_space)
    replay = replay_estimate(cfg, obs_space, action_space)
    learner_model, runner_model, params, layers = model_estimate(cfg, obs_space, action_space)
    models = learner_model + cfg.farm.num_runners * runner_model
    needed = cfg.farm.num_runners * per_runner + in_flight + models + replay
    available = available_memory_bytes()
    if available is not None and needed > available and models > needed / 2:
        raise ConfigError(f"model.hidden_sizes: {layers} layers, {params:,} parameters: about {_gb(learner_model)} "
                          f"in the learner + {_gb(runner_model)} in each of farm.num_runners={cfg.farm.num_runners} "
                          f"runners; {_gb(available)} available (--force starts it anyway)")
    if available is not None and needed > available:
        replay_text = f" + {_gb(replay)} of replay buffer (algo.replay_size={cfg.algo.replay_size})" if replay else ""
        raise ConfigError(f"env.envs_per_runner={cfg.env.envs_per_runner}: about {_gb(per_runner)} per runner "
                          f"x farm.num_runners={cfg.farm.num_runners} + {_gb(in_flight)} of fragments in flight"
                          f"{replay_text} = {_gb(needed)}; {_gb(available)} available (--force starts it anyway)")


def replay_estimate(cfg: Any, obs_space: Any, action_space: Any) -> int:
    """Host bytes of an off-policy learner's replay buffer (0 for PPO/APPO, and for a learner
    on CUDA, whose buffer lives in GPU memory)."""
    from rlfarm.agents.config import replay_bytes

    if cfg.algo.name not in ("sac", "dqn") or cfg.algo.device == "cuda":
        return 0
    if obs_space is None or action_space is None:
        from rlfarm import envs

        probe = envs.make(cfg.env.id, 1, imports=tuple(cfg.env.imports), **(cfg.env.kwargs or {}))
        obs_space, action_space = probe.single_observation_space, probe.single_action_space
        probe.close()
    itemsize = 4 if np.dtype(action_space.dtype or np.int64).kind == "f" else 8
    return replay_bytes(cfg.algo.replay_size, obs_space.shape, action_space.shape or (), itemsize)


def memory_estimate(cfg: ExperimentConfig, obs_space: Any = None, action_space: Any = None) -> tuple[int, int]:
    """(bytes one runner holds: env state and its fragments, bytes of fragments in flight in
    the object store), from the env's spaces (None: one copy is built to read them)."""
    if obs_space is None or action_space is None:
        from rlfarm import envs

        probe = envs.make(cfg.env.id, 1, imports=tuple(cfg.env.imports), **(cfg.env.kwargs or {}))
        obs_space, action_space = probe.single_observation_space, probe.single_action_space
        probe.close()
    obs_bytes = int(np.prod(obs_space.shape)) * 4
    action_bytes = int(np.prod(action_space.shape or (1,))) * max(np.dtype(action_space.dtype or np.int64).itemsize, 1)
    steps, copies = cfg.farm.fragment_length, cfg.env.envs_per_runner
    fragment = copies * ((steps + 1) * obs_bytes + steps * (action_bytes + 4 * 4 + 2))  # + logp, values, rewards, finals, flags
    env_state = copies * obs_bytes * ENV_STATE_PER_OBS
    per_runner = env_state + (cfg.farm.max_inflight + 1) * fragment
    in_flight = cfg.farm.num_runners * cfg.farm.max_inflight * fragment if cfg.farm.mode == "ray" else 0
    return per_runner, in_flight


def model_estimate(cfg: Any, obs_space: Any, action_space: Any) -> tuple[int, int, int, int]:
    """(learner bytes, bytes of one runner's copy, parameters, layers) of the MLP actor-critic
    that `cfg.model` describes (a CNN trunk's convolutions are not counted)."""
    sizes = [int(np.prod(obs_space.shape))] + [int(width) for width in cfg.model.hidden_sizes]
    outputs = int(getattr(action_space, "n", 0)) or int(np.prod(action_space.shape or (1,)))
    trunk = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    trunks = 1 if getattr(cfg.model, "shared_trunk", False) else 2
    params = trunks * trunk + (sizes[-1] + 1) * (outputs + 1)
    layers = trunks * (len(sizes) - 1) + 2
    runner = 4 * params + LAYER_BYTES * layers
    return LEARNER_COPIES * 4 * params + LAYER_BYTES * layers, runner, params, layers


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _gb(count: int) -> str:
    return f"{count / 2**30:.1f} GB" if count >= 2**30 else f"{count / 2**20:.0f} MB"
