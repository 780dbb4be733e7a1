"""Measurement tools, apart from the product: `rlfarm bench` and what it measures with.

- envs.py: env-only steps/s per core, against gymnasium's own vectorized envs;
- farm.py: `rlfarm bench --farm`, sampling through the Ray farm (farm_sampling.py, through
  the farm's public `sampling_stream()` hook), weak scaling over runner counts, the same
  runners as plain processes without Ray (bare_sampling.py), the farm's CPU accounting
  (proc_cpu.py) and RLlib's sampling on the same env (cluster/rllib_sampling.py);
- learner.py: the learner's samples/s (`python -m rlfarm.experiments.bench.learner`);
- scale.py: `rlfarm scale`, throughput over runner counts and envs per runner;
- seeds.py: `rlfarm seeds`, a config trained over many seeds (solve rate, steps to solve);
- ray_start.py: what each of the embedded Ray's start-up patches saves.

`main` dispatches `rlfarm bench`; each measurement module is imported only when it runs.
"""
from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    from rlfarm.experiments.errors import ConfigError

    if getattr(args, "runners", None) and not args.farm:
        raise ConfigError("--runners: weak scaling measures the farm; add --farm CONFIG")
    if getattr(args, "no_ray", False) and not args.farm:
        raise ConfigError("--no-ray: runs the runners of a farm config; add --farm CONFIG")
    if args.farm:
        from rlfarm.experiments.bench import farm

        return int(farm.main(args) or 0)
    from rlfarm.experiments.bench import envs

    return int(envs.main(args) or 0)
