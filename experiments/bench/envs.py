"""`rlfarm bench` without --farm: env-only steps/s per core.

The benchmark pins itself to one CPU core and single-threaded BLAS, so its figures are
steps/s per core. For CartPole and Pendulum it measures gymnasium's own vectorized version
in the same run (numpy `vector_entry_point` for CartPole, `SyncVectorEnv` for Pendulum) and
prints our speed as a ratio of theirs. An env that says how many lattice-cell updates one of
its steps makes per copy (`lattice_updates_per_step`, e.g. CylinderJets) also gets MLUPS,
million lattice updates per second per core, the unit of lattice Boltzmann codes. An env class
with `bench_num_envs` is measured at those batch sizes unless --num-envs is given (a 2-D
lattice of 36k cells per copy does not fit 4096 copies). Only numpy and gymnasium are imported
(no torch).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from rlfarm.experiments.errors import ConfigError, positive_ints

#: rlfarm id -> (gymnasium id, vectorization mode, what to call it)
REFERENCES = {
    "rlfarm/CartPole-v1": ("CartPole-v1", "vector_entry_point", "gymnasium CartPoleVectorEnv (numpy)"),
    "rlfarm/Pendulum-v1": ("Pendulum-v1", "sync", "gymnasium SyncVectorEnv(Pendulum-v1)"),
}
ACTION_BATCHES = 16  # distinct pre-drawn action batches, cycled while timing
DEFAULT_SIZES = (64, 1024, 4096)


def pin_to_one_core() -> int:
    """Run this process (and its BLAS) on one core; returns that core's number."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # effective when numpy's BLAS loads after this point
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def steps_per_second(env, seconds: float, repeats: int = 3) -> float:
    """Env steps/s of `env` with random actions: the best of `repeats` timings of seconds/repeats."""
    import numpy as np

    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [np.asarray(env.action_space.sample()) for _ in range(ACTION_BATCHES)]
    start = time.perf_counter()
    for action in actions:  # warm-up: caches, first allocations (a slow env: one step is enough)
        env.step(action)
        if time.perf_counter() - start > seconds / repeats:
            break
    best = 0.0
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / repeats:
            env.step(actions[steps % len(actions)])
            steps += 1
        best = max(best, steps * env.num_envs / elapsed)
    return best


def run_benchmark(env_ids: list[str], sizes: list[int] | None, seconds: float, progress=None) -> list[dict]:
    """`sizes` None: each env's own `bench_num_envs`, else DEFAULT_SIZES."""
    import gymnasium as gym

    from rlfarm import envs

    results = []
    for env_id in env_ids:
        source = envs.resolve(env_id)
        own = getattr(source.target, "bench_num_envs", None) if source.kind == "batched" else None
        for num_envs in sizes or own or DEFAULT_SIZES:
            if progress:
                progress(f"{env_id} x {num_envs} ...")
            env = envs.make(env_id, num_envs, seed=0)
            row = {"env": env_id, "num_envs": num_envs, "steps_per_s": steps_per_second(env, seconds)}
            updates = getattr(env.unwrapped, "lattice_updates_per_step", None)
            if updates:
                row["mlups"] = row["steps_per_s"] * updates / 1e6
            env.close()
            if env_id in REFERENCES:
                ref_id, mode, name = REFERENCES[env_id]
                ref = gym.make_vec(ref_id, num_envs=num_envs, vectorization_mode=mode)
                row["reference"] = name
                row["reference_steps_per_s"] = steps_per_second(ref, seconds)
                row["ratio"] = row["steps_per_s"] / row["reference_steps_per_s"]
                ref.close()
            results.append(row)
    return results


def format_table(results: list[dict], core: int) -> str:
    lines = [f"env-only steps/s on one core (core {core}), random actions",
             f"{'env':<34} {'envs':>6} {'steps/s':>12} {'reference steps/s':>18} {'ratio':>7}  reference"]
    for row in results:
        ref = f"{row['reference_steps_per_s']:>18,.0f} {row['ratio']:>6.2f}x  {row['reference']}" \
            if "ratio" in row else f"{'':>18} {'':>7}"
        mlups = f"  {row['mlups']:.2f} MLUPS (lattice updates/s per core)" if "mlups" in row else ""
        rate = f"{row['steps_per_s']:>12,.0f}" if row["steps_per_s"] >= 100 else f"{row['steps_per_s']:>12.2f}"
        lines.append(f"{row['env']:<34} {row['num_envs']:>6} {rate} {ref}{mlups}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    core = pin_to_one_core()
    from rlfarm import envs

    sizes = None if args.num_envs is None else positive_ints("--num-envs", args.num_envs, "64,1024,4096")
    env_ids = args.env_ids or envs.registered_ids()
    for env_id in env_ids:  # any id a config's env.id accepts
        try:
            envs.resolve(env_id)
        except envs.EnvSpecError as err:
            raise ConfigError(f"--env: {err}") from None
    seconds = 1.0 if args.seconds is None else args.seconds
    if not seconds > 0:
        raise ConfigError(f"--seconds: expected a positive number, got {args.seconds}")
    quiet = args.json or not sys.stderr.isatty()
    results = run_benchmark(env_ids, sizes, seconds,
                            progress=None if quiet else (lambda msg: print(msg, file=sys.stderr)))
    if args.json:
        print(json.dumps({"core": core, "seconds_per_point": seconds, "results": results}))
    else:
        print(format_table(results, core))
    return 0
