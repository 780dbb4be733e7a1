"""`rlfarm bench --farm CONFIG`: env steps/s sampled through the Ray farm (policy inference
included, fragments delivered to the learner process), optionally against RLlib.

    rlfarm bench --farm experiments/configs/bench_farm.yaml --seconds 10 --vs-rllib

The runners, envs per runner and fragment length come from CONFIG (and --set overrides);
the learner actor receives every fragment and discards it, so the figure is the farm's
sampling and delivery speed, not training speed.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def main(args: argparse.Namespace) -> int:
    from experiments.config import load_config

    cfg = load_config(args.farm, args.overrides)
    cfg.farm.mode = "ray"
    if args.address:
        cfg.farm.address = args.address
    seconds = args.seconds if args.seconds is not None else 10.0
    setup = {"config": args.farm, "env": cfg.env.id, "num_runners": cfg.farm.num_runners,
             "envs_per_runner": cfg.env.envs_per_runner, "fragment_length": cfg.farm.fragment_length,
             "max_inflight": cfg.farm.max_inflight, "seconds": seconds}
    if not args.json:
        print(f"rlfarm bench --farm: {cfg.farm.num_runners} runners x {cfg.env.envs_per_runner} "
              f"{cfg.env.id} envs, fragments of {cfg.farm.fragment_length} steps, {seconds:g} s ...",
              file=sys.stderr, flush=True)

    from cluster.bench_sampling import farm_sampling

    report: dict[str, Any] = {**setup, "rlfarm": farm_sampling(cfg.env, cfg.model, cfg.algo, cfg.farm,
                                                               cfg.seed, seconds)}
    if args.vs_rllib:
        from cluster.bench_sampling import rllib_sampling

        if not args.json:
            print("running RLlib PPO sampling on the same env, runners and envs ...", file=sys.stderr, flush=True)
        report["rllib"] = rllib_sampling(cfg.env.id, cfg.farm.num_runners, cfg.env.envs_per_runner,
                                         cfg.farm.fragment_length, seconds, address=cfg.farm.address)
        report["ratio"] = report["rlfarm"]["env_steps_per_s"] / max(report["rllib"]["env_steps_per_s"], 1e-9)
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0


def _print_table(report: dict[str, Any]) -> None:
    ours = report["rlfarm"]
    print(f"rlfarm  {ours['env_steps_per_s'] / 1e6:8.3f} M env steps/s  "
          f"({ours['env_steps']:,} steps in {ours['seconds']:.1f} s; env step {ours['env_step_ms']:.2f} ms, "
          f"inference {ours['inference_ms']:.2f} ms per batched step; fragment {ours['fragment_mb']:.1f} MB; "
          f"object store max {ours['object_store_max_mb']:.1f} MB)")
    if "rllib" in report:
        print(f"rllib   {report['rllib']['env_steps_per_s'] / 1e6:8.3f} M env steps/s  "
              f"({report['rllib']['env_steps']:,} steps in {report['rllib']['seconds']:.1f} s)")
        print(f"ratio   {report['ratio']:8.1f} x")
