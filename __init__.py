"""rlfarm: a reinforcement-learning environment farm.

The repository's top-level folders install as one package, so that nothing of ours lands in
site-packages under a generic name (a user's own `envs/` or `experiments/` folder cannot
shadow it):

    envs/         -> rlfarm.envs         numpy-batched gymnasium VectorEnvs, the registry
    agents/       -> rlfarm.agents       torch policies, PPO/APPO learners, checkpoints
    cluster/      -> rlfarm.cluster      runners, learners, the serial and Ray farms, SLURM
    experiments/  -> rlfarm.experiments  configs, the `rlfarm` CLI, monitoring, benchmarks

The mapping lives in pyproject.toml ([tool.setuptools] package-dir).
"""
