"""Train one config over 5 seeds with rlfarm's Python API; plot mean +- std of the return.

    python experiments/examples/seed_study.py [--config CONFIG] [--env-steps N] [--out seed_study.png]
"""
import argparse

import matplotlib
import numpy as np

import rlfarm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file backend)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--config", default="experiments/configs/cartpole_ppo.yaml")
parser.add_argument("--env-steps", type=int, default=200_000)
parser.add_argument("--out", default="seed_study.png")
args = parser.parse_args()

runs = [rlfarm.train(rlfarm.load_config(args.config, {"seed": seed, "farm.mode": "serial", "log.progress": "none",
                                                      "stop.env_steps": args.env_steps, "stop.target_return": None}))
        for seed in range(5)]
grid = np.linspace(0, args.env_steps, 50)
curves = np.array([np.interp(grid, *run.scalars("charts/episode_return_mean")) for run in runs])
mean, std = curves.mean(axis=0), curves.std(axis=0)
plt.plot(grid, mean, label=f"mean of {len(runs)} seeds")
plt.fill_between(grid, mean - std, mean + std, alpha=0.3, label="+- std")
plt.xlabel("env steps"), plt.ylabel("episode return"), plt.legend()
plt.savefig(args.out, dpi=100)
print(f"final return {mean[-1]:.1f} +- {std[-1]:.1f}; wrote {args.out}; runs: {[str(r.dir) for r in runs]}")
