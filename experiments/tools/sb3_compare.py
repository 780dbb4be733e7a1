"""The CartPole demo's whole-process time side by side with Stable-Baselines3's PPO.

    python experiments/tools/sb3_compare.py [--rounds 5] [--modes ray,serial] [--out FILE.json]

Each round runs, one after the other in a rotating order, fresh processes of:
- `rlfarm train experiments/configs/cartpole_ppo.yaml` in each of --modes (Ray farm, serial);
- SB3 PPO with rl-zoo's tuned CartPole-v1 hyperparameters (8 envs, n_steps 32, batch 256,
  20 epochs, gamma 0.98, gae_lambda 0.8, lr 1e-3 and clip 0.2 annealed linearly over
  rl-zoo's 1e5 steps), stopped once the mean of its last 100 episode returns reaches 475.
Both stop at the same target (475 over 100 episodes), both train with --torch-threads torch
threads. A process's time is its whole wall time, interpreter start to exit. Alternating
in one run is what makes the ratio meaningful on a shared, noisy machine.

stable-baselines3 is not a dependency of rlfarm: `pip install -e '.[compare]'`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole_ppo.yaml"
TARGET_RETURN = 475.0

SB3_SCRIPT = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

def linear(start):
    return lambda remaining: remaining * start  # rl-zoo's lin_<start>

class StopAtTarget(BaseCallback):
    solved = False
    def _on_step(self):
        infos = self.model.ep_info_buffer  # the last 100 episodes
        if len(infos) == infos.maxlen and sum(i["r"] for i in infos) / len(infos) >= float(sys.argv[2]):
            self.solved = True
            return False
        return True

env = make_vec_env("CartPole-v1", n_envs=8, seed=int(sys.argv[3]))
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
            ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=int(sys.argv[3]),
            device="cpu", verbose=0)
callback = StopAtTarget()
model.learn(total_timesteps=100_000, callback=callback)
print(json.dumps({"env_steps": model.num_timesteps, "solved": callback.solved}))
"""


def run_rlfarm(mode: str, seed: int, threads: int, work: str) -> dict:
    run_dir = os.path.join(work, f"rlfarm-{mode}-{time.monotonic_ns()}")
    argv = [sys.executable, "-m", "rlfarm.experiments.cli", "train", str(DEMO_CONFIG), "--run-dir", run_dir,
            "--set", f"farm.mode={mode}", "--set", f"seed={seed}", "--set", "log.progress=none",
            "--set", f"stop.target_return={TARGET_RETURN}"]
    env = dict(os.environ, RLFARM_TORCH_THREADS=str(threads))
    wall_s = _timed(argv, env)
    summary = json.loads(Path(run_dir, "summary.json").read_text())
    return {"wall_s": wall_s, "env_steps": summary["env_steps"], "solved": summary["solved"]}


def run_sb3(seed: int, threads: int) -> dict:
    argv = [sys.executable, "-c", SB3_SCRIPT, str(threads), str(TARGET_RETURN), str(seed)]
    out: list[str] = []
    wall_s = _timed(argv, dict(os.environ), out)
    return {"wall_s": wall_s, **json.loads(out[0].strip().splitlines()[-1])}


def _timed(argv: list[str], env: dict, stdout: list[str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"sb3_compare: {' '.join(argv[:6])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    if stdout is not None:
        stdout.append(done.stdout)
    return wall_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of all runs (default: %(default)s)")
    parser.add_argument("--modes", default="ray,serial", help="rlfarm farm modes (default: %(default)s)")
    parser.add_argument("--torch-threads", type=int, default=1, help="for both (default: %(default)s)")
    parser.add_argument("--out", default=None, help="also write the runs and medians as JSON here")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if args.rounds < 1 or not modes or any(m not in ("ray", "serial") for m in modes):
        print("sb3_compare: --rounds must be >= 1 and --modes a list of ray, serial", file=sys.stderr)
        return 2
    try:
        import stable_baselines3  # noqa: F401 - only to fail early with a clear message
    except ImportError:
        print("sb3_compare: stable-baselines3 is not installed; pip install -e '.[compare]' "
              "(or pip install stable-baselines3)", file=sys.stderr)
        return 2
    names = [f"rlfarm-{m}" for m in modes] + ["sb3"]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="sb3-compare-") as work:
        for round_index in range(args.rounds):
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in order:
                seed = round_index
                result = (run_sb3(seed, args.torch_threads) if name == "sb3"
                          else run_rlfarm(name.split("-", 1)[1], seed, args.torch_threads, work))
                runs[name].append(result)
                print(f"round {round_index} {name}: {result['wall_s']:.1f} s, {result['env_steps']:,} env steps, "
                      f"{'solved' if result['solved'] else 'NOT solved'}", file=sys.stderr)
    medians = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
    for name in names:
        steps = statistics.median(r["env_steps"] for r in runs[name])
        solved = sum(r["solved"] for r in runs[name])
        line = f"{name:>14}: median {medians[name]:.1f} s whole process, median {steps:,.0f} env steps, solved {solved}/{args.rounds}"
        if name != "sb3":
            line += f"; SB3 / this = {medians['sb3'] / medians[name]:.2f}x"
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps({"runs": runs, "median_wall_s": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
