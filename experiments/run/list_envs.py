"""`rlfarm envs`: every env id that `rlfarm train` accepts, with spaces and keywords.

rlfarm's own ids, the simulator bridge `rlfarm/Subprocess-v0`, the ids installed packages
declare in the `rlfarm.envs` entry-point group, and what else `env.id` may name. Only numpy
and gymnasium are imported (no torch, no Ray), so it answers at once.
"""
from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    from rlfarm import envs
    from rlfarm.envs import registry

    for env_id in envs.registered_ids():
        env = registry.batched_class(env_id)(1)
        print(f"{env_id}\n    {registry.ENTRIES[env_id].description}\n"
              f"    observation: {env.single_observation_space}\n"
              f"    action:      {env.single_action_space}\n"
              f"    keywords:    {', '.join(registry.accepted_kwargs(type(env)))}")
    print(f"{registry.SUBPROCESS_ID}\n    a simulator in any language as an external program over a pipe "
          "(docs/envs.md, section 3); its spaces come from kwargs\n"
          f"    keywords:    {', '.join(registry.accepted_kwargs(registry.subprocess_class()))}")
    declared = registry.entry_point_ids()
    print("\nFrom installed packages (`rlfarm.envs` entry points):" if declared else
          "\nFrom installed packages: none (a package declares ids in the `rlfarm.envs` entry-point group)")
    for env_id, target in sorted(declared.items()):
        print(f"{env_id}\n    {target}\n    {_describe(env_id)}")
    print("\nAlso accepted as env.id: any gymnasium id (e.g. Acrobot-v1, vectorized by gymnasium), an id "
          "that a module in env.imports registers, and \"package.module:Class\" (a module in the folder "
          "rlfarm starts from included).")
    return 0


def _describe(env_id: str) -> str:
    """Spaces of one copy made with the env's defaults, or why it cannot be made so."""
    from rlfarm import envs

    try:
        env = envs.make(env_id, 1)
    except Exception as err:  # noqa: BLE001 - the listing goes on; the package's own error is shown
        return f"(not made with its defaults: {type(err).__name__}: {err})"
    try:
        return f"observation: {env.single_observation_space}; action: {env.single_action_space}"
    finally:
        env.close()
