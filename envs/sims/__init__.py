"""Reference simulators for rlfarm/Subprocess-v0: CartPole in C and in plain Python, speaking
the bridge's protocol (envs/subprocess_env.py). `python -m rlfarm.envs.sims.c_cartpole` builds
the C one with the system's `cc` (cached) and runs it in its own place."""
