"""A run's lifecycle: the preflight (resume lookup, run dir, env check, capacity, Ray's start),
the training loop and its finish, stops, run dirs and checkpoints, evaluation, and the env
commands (`rlfarm envs`, `rlfarm envs check`) that tell whether an env will train."""
