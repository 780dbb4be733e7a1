"""The `rlfarm/...` ids, their registration with gymnasium, and `envs.make`."""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

import gymnasium as gym

from rlfarm.envs.base import BatchedEnv, parse_autoreset_mode
from rlfarm.envs.checks import check_int

NAMESPACE = "rlfarm"


@dataclass(frozen=True)
class EnvEntry:
    id: str
    """The gymnasium id, in the `rlfarm` namespace."""
    batched: str
    """`module:Class` of the numpy-batched VectorEnv."""
    single: str
    """`module:Class` of the single-env view that `gym.make(id)` returns."""
    description: str
    """One line for `rlfarm envs`."""


ENTRIES: dict[str, EnvEntry] = {e.id: e for e in [
    EnvEntry("rlfarm/CartPole-v1", "rlfarm.envs.cartpole:CartPoleBatched", "rlfarm.envs.cartpole:CartPoleEnv",
             "gymnasium's CartPole-v1 dynamics; 2 actions; 500-step episodes"),
    EnvEntry("rlfarm/Pendulum-v1", "rlfarm.envs.pendulum:PendulumBatched", "rlfarm.envs.pendulum:PendulumEnv",
             "gymnasium's Pendulum-v1; torque in [-2, 2]; 200-step episodes"),
    EnvEntry("rlfarm/HeatControl-v0", "rlfarm.envs.heat:HeatControlBatched", "rlfarm.envs.heat:HeatControlEnv",
             "2-D heat equation on an n x n plate, K heaters, track a random target field"),
    EnvEntry("rlfarm/KuramotoSivashinsky-v0", "rlfarm.envs.ks:KuramotoSivashinskyBatched",
             "rlfarm.envs.ks:KuramotoSivashinskyEnv",
             "1-D Kuramoto-Sivashinsky (L=22, ETDRK4), M actuators, minimize dissipation"),
]}


def _load(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def available_ids() -> list[str]:
    """The rlfarm ids whose module exists in this checkout."""
    ids = []
    for entry in ENTRIES.values():
        try:
            _load(entry.batched)
        except (ImportError, AttributeError):
            continue
        ids.append(entry.id)
    return ids


def registered_ids() -> list[str]:
    """The `rlfarm/...` ids that `envs.make` and `gymnasium.make` accept."""
    return [env_id for env_id in ENTRIES if env_id in gym.registry]


def register_all() -> None:
    for env_id in available_ids():
        if env_id not in gym.registry:
            entry = ENTRIES[env_id]
            gym.register(id=env_id, entry_point=entry.single, vector_entry_point=entry.batched,
                         disable_env_checker=False)


def batched_class(env_id: str) -> type[BatchedEnv]:
    return _load(ENTRIES[env_id].batched)


def accepted_kwargs(cls: type) -> list[str]:
    skip = {"self", "num_envs", "autoreset_mode", "runner_index"}
    return [name for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def make(env_id: str, num_envs: int, *, seed=None, runner_index: int = 0,
         autoreset_mode: str = "next_step", vectorization: str = "sync", **kwargs) -> gym.vector.VectorEnv:
    """N copies of env `env_id` as one VectorEnv with rlfarm's conventions (docs/interfaces.md).

    An `rlfarm/...` id gives the numpy-batched env; any other gymnasium id is vectorized by
    gymnasium (`vectorization`: "sync" or "async") behind `envs.adapters.ForeignVectorEnv`.
    `seed` seeds the first `reset()` that has no seed; copy i of runner r then draws from a
    stream derived from (seed, r, i). `kwargs` go to the env's constructor.
    """
    mode = parse_autoreset_mode(autoreset_mode)
    check_int("num_envs", num_envs, 1)
    if env_id in registered_ids():
        cls = batched_class(env_id)
        accepted = accepted_kwargs(cls)
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"{env_id}: unknown keyword(s) {unknown}; accepted: {accepted}")
        env = cls(num_envs, autoreset_mode=mode, runner_index=runner_index, **kwargs)
    elif env_id in gym.registry or ":" in env_id:
        from rlfarm.envs.adapters import ForeignVectorEnv
        try:
            env = ForeignVectorEnv(env_id, num_envs, autoreset_mode=mode, vectorization=vectorization,
                                   runner_index=runner_index, **kwargs)
        except TypeError as err:
            raise ValueError(f"{env_id}: bad keyword arguments {sorted(kwargs)}: {err}") from err
    else:
        raise ValueError(f"env_id: unknown env {env_id!r}; rlfarm ids: {registered_ids()} "
                         "(or any id registered with gymnasium, e.g. 'Acrobot-v1')")
    env.default_seed = seed
    return env
