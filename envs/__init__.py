"""rlfarm's environments: numpy-batched gymnasium VectorEnvs and adapters for foreign envs.

`import envs` registers the `rlfarm/...` ids with gymnasium, so `gymnasium.make(id)` (a
single-env view) and `gymnasium.make_vec(id, n, vectorization_mode="vector_entry_point")`
(the batched env) work. `envs.make` is what runners use. See docs/interfaces.md.
"""
from rlfarm.envs.base import BatchedEnv
from rlfarm.envs.config import EnvConfig
from rlfarm.envs.registry import make, register_all, registered_ids

register_all()

__all__ = ["BatchedEnv", "EnvConfig", "make", "registered_ids"]
