"""Learner throughput: samples/s through one PPO epoch for the default MLP on CartPole-shaped data.

    python -m rlfarm.experiments.bench.learner [--batch 65536] [--device auto|cpu|cuda] [--eager] [--json]

The batch is one update's worth of fragments (T=64 steps x batch/64 envs, obs of 4 floats,
2 discrete actions). Each timed update includes the host->device copy, GAE, one epoch of
minibatch SGD (AlgoConfig's default minibatches) and the normalizer merge, exactly as
`learner.update` does in training. Prints the median over --repeats updates after a warm-up
(on CUDA the warm-up also captures the minibatch step's CUDA graph; --eager runs without).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rlfarm.experiments.bench.learner", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=65536, help="samples per update (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="learner device")
    parser.add_argument("--epochs", type=int, default=1, help="PPO epochs per update (default: %(default)s)")
    parser.add_argument("--minibatches", type=int, default=None, help="minibatches per epoch (default: AlgoConfig's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed updates (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--eager", action="store_true",
                        help="on CUDA, launch every kernel from Python (algo.cuda_graphs: false)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def fragments_for(batch: int, horizon: int = 64, envs_per_fragment: int = 1024, seed: int = 0):
    import numpy as np

    from rlfarm.agents import Fragment

    rng = np.random.default_rng(seed)
    total_envs = max(1, batch // horizon)
    fragments = []
    while total_envs > 0:
        envs = min(envs_per_fragment, total_envs)
        total_envs -= envs
        fragment = Fragment.allocate(horizon, envs, (4,))
        fragment.obs[:] = rng.normal(size=fragment.obs.shape)
        fragment.actions[:] = rng.integers(0, 2, size=fragment.actions.shape)
        fragment.logp[:] = -0.69
        fragment.values[:] = rng.normal(size=(horizon, envs))
        fragment.rewards[:] = 1.0
        fragment.terminated[:] = rng.random((horizon, envs)) < 0.02
        fragments.append(fragment)
    return fragments


def measure(args) -> dict:
    import numpy as np
    import torch
    from gymnasium import spaces

    from rlfarm import agents

    torch.set_num_threads(args.threads)
    algo = agents.AlgoConfig(epochs=args.epochs, device=args.device, cuda_graphs=not args.eager,
                             **({"minibatches": args.minibatches} if args.minibatches else {}))
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    learner = agents.make_learner(obs_space, spaces.Discrete(2), agents.PolicyConfig(), algo, seed=0)
    fragments = fragments_for(args.batch)
    samples = sum(f.num_steps for f in fragments)
    learner.update(fragments)  # warm-up: allocations, pinned staging buffer, CUDA kernels
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        learner.update(fragments)  # ends with a device sync (the metrics come back to the host)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    device = learner.device
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({args.threads} thread(s))",
        "batch": samples, "epochs": algo.epochs, "minibatches": algo.minibatches,
        "cuda_graphs": device.type == "cuda" and algo.cuda_graphs,
        "policy": "MLP 64x64 tanh, separate actor/critic, obs 4, Discrete(2)",
        "update_ms_median": 1000 * median, "update_ms_best": 1000 * min(times),
        "samples_per_s": samples / median, "samples_per_s_best": samples / min(times),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch < 64:
        print("bench_learner: error: --batch must be at least 64", file=sys.stderr)
        return 2
    try:
        result = measure(args)
    except ValueError as err:  # e.g. device: cuda without a GPU
        print(f"bench_learner: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"learner on {result['device_name']}: batch {result['batch']}, {result['epochs']} epoch x "
              f"{result['minibatches']} minibatches, {result['policy']}"
              f"{', CUDA graphs' if result['cuda_graphs'] else ''}")
        print(f"  {result['samples_per_s'] / 1e6:.2f}M samples/s (median of {args.repeats}; "
              f"best {result['samples_per_s_best'] / 1e6:.2f}M), {result['update_ms_median']:.1f} ms per update")
    return 0


if __name__ == "__main__":
    sys.exit(main())
