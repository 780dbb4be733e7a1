"""rlfarm's environments: numpy-batched gymnasium VectorEnvs and adapters for foreign envs.

`import envs` registers the `rlfarm/...` ids, the bridge and installed entry-point ids with
gymnasium, so `gymnasium.make(id)` (a single-env view) and `gymnasium.make_vec(id, n)` (the
batched env, seen as gymnasium's wrappers expect: envs/interop.py) work. `to_sb3` gives a
Stable-Baselines3 VecEnv (envs/sb3.py). `envs.make` is what runners use; `envs.resolve` says what an env id names (an rlfarm,
gymnasium or user id, an `rlfarm.envs` entry point, or "package.module:attr"). See
docs/interfaces.md and docs/envs.md.
"""
from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.config import EnvConfig
from rlfarm.envs.interop import to_gymnasium
from rlfarm.envs.registry import EnvSpecError, env_factory, make, register_all, registered_ids, resolve
from rlfarm.envs.sb3 import to_sb3

register_all()

__all__ = ["BatchedEnv", "EnvConfig", "EnvSpecError", "env_factory", "make", "registered_ids", "resolve",
           "to_gymnasium", "to_sb3"]
