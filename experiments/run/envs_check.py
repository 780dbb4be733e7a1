"""`rlfarm envs check ID_OR_PATH [--num-envs N] [--import MODULE] [--config CONFIG]`: will this
env farm? With --config the env is the config's `env` section (id, kwargs, imports), as
`rlfarm train` makes it: the way to check an env that needs keywords (rlfarm/Subprocess-v0).

Runs envs/conventions.py's checks on the env as a runner would make it, prints one line per
check, then the env-only steps/s on one core. Exit 0 when every check passes, 1 when one
fails (named in the output), 2 when the id or an option is wrong.
"""
from __future__ import annotations

import argparse
import sys

from rlfarm.experiments.errors import ConfigError


def main(args: argparse.Namespace) -> int:
    from rlfarm import envs
    from rlfarm.envs import conventions
    from rlfarm.experiments.bench.envs import pin_to_one_core, steps_per_second

    kwargs: dict = {}
    imports = tuple(args.imports or ())
    if args.config:
        from rlfarm.experiments.config import load_config

        env_cfg = load_config(args.config).env
        args.target = args.target or env_cfg.id
        kwargs, imports = dict(env_cfg.kwargs or {}), imports + tuple(env_cfg.imports)
    if not args.target:
        raise ConfigError("ID_OR_PATH: give the env to check, e.g. rlfarm envs check mypkg.envs:MyEnv "
                          "(or --config CONFIG)")
    if args.num_envs < 1:
        raise ConfigError(f"--num-envs: expected an int >= 1, got {args.num_envs}")
    core = pin_to_one_core()
    try:
        results = conventions.check(args.target, args.num_envs, imports=imports, kwargs=kwargs)
    except envs.EnvSpecError as err:
        raise ConfigError(str(err).replace("env_id: ", "ID_OR_PATH: ", 1)) from None
    except (ValueError, TypeError) as err:  # a bad or missing keyword for this env
        raise ConfigError(f"{'env.kwargs' if args.config else 'ID_OR_PATH'}: {err}") from None
    for result in results:
        status = "ok  " if result.ok else "FAIL"
        print(f"{status} {result.name}{': ' + result.message if result.message else ''}")
    failed = [result.name for result in results if not result.ok]
    if failed:
        print(f"rlfarm envs check: {args.target} will not farm: failed {', '.join(failed)}", file=sys.stderr)
        return 1
    env = envs.make(args.target, args.speed_envs, seed=0, imports=imports, **kwargs)
    try:
        rate = steps_per_second(env, args.seconds)
        obs = env.step(env.action_space.sample())[0]  # still the declared shape, after many steps?
        if tuple(obs.shape[1:]) != tuple(env.single_observation_space.shape):
            raise ValueError(f"observation shape {tuple(obs.shape)} after the speed run; the env declares "
                             f"(num_envs, *{tuple(env.single_observation_space.shape)})")
    except Exception as err:  # noqa: BLE001 - the env broke a convention later than the checks looked
        from rlfarm.envs.failures import describe

        report = describe(err, "the speed measurement").report().splitlines()
        print(f"FAIL speed: {report[0].split(': ', 1)[-1]}" + "".join(f"\n     {line.strip()}" for line in report[1:]))
        print(f"rlfarm envs check: {args.target} will not farm: failed speed (its steps over "
              f"{args.seconds:g} s, past the checks' rollouts)", file=sys.stderr)
        return 1
    finally:
        env.close()
    print(f"speed: {rate:,.0f} env steps/s on one core (core {core}), {args.speed_envs} copies, random actions")
    print(f"rlfarm envs check: {args.target} follows the conventions and will farm")
    return 0
