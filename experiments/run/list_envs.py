"""`rlfarm envs`: the registered envs with their spaces and the keywords they accept.

Only numpy and gymnasium are imported (no torch, no Ray), so it answers at once.
"""
from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    """Print every registered rlfarm id with its description, spaces and keywords."""
    from rlfarm import envs
    from rlfarm.envs.registry import ENTRIES, accepted_kwargs, batched_class

    for env_id in envs.registered_ids():
        env = batched_class(env_id)(1)
        print(f"{env_id}\n    {ENTRIES[env_id].description}\n"
              f"    observation: {env.single_observation_space}\n"
              f"    action:      {env.single_action_space}\n"
              f"    keywords:    {', '.join(accepted_kwargs(type(env)))}")
    print("\nAny other gymnasium id (e.g. Acrobot-v1) also works, vectorized by gymnasium.")
    return 0
