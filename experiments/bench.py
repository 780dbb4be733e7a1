"""`rlfarm bench`: env-only speed (experiments/bench_envs.py) or sampling through the farm
(experiments/bench_farm.py)."""
from __future__ import annotations

import argparse
import importlib


def main(args: argparse.Namespace) -> int:
    from rlfarm.experiments.errors import ConfigError

    if getattr(args, "runners", None) and not args.farm:
        raise ConfigError("--runners: weak scaling measures the farm; add --farm CONFIG")
    if getattr(args, "no_ray", False) and not args.farm:
        raise ConfigError("--no-ray: runs the runners of a farm config; add --farm CONFIG")
    module = "rlfarm.experiments.bench_farm" if args.farm else "rlfarm.experiments.bench_envs"
    return int(importlib.import_module(module).main(args) or 0)
