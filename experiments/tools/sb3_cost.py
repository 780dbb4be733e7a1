"""The cost of a result, rlfarm beside Stable-Baselines3 with rl-zoo's hyperparameters.

    python experiments/tools/sb3_cost.py [--cases sac-pendulum,dqn-cartpole,ppo-cartpole]
                                         [--seeds 0-4] [--torch-threads 1] [--out FILE.json]

For each case and seed, one rlfarm run and one SB3 run, in alternating order (rlfarm first
on even seeds, SB3 first on odd ones), each a fresh process measured whole by
experiments/bench/process_cost.py: wall time from spawn to exit, CPU core-seconds of all its
processes, CPU package joules where RAPL is readable. Both train with --torch-threads threads.

The cases, each judged on the same target:
- sac-pendulum: experiments/configs/pendulum_sac.yaml against SB3 SAC (rl-zoo Pendulum-v1:
  lr 1e-3, SB3's defaults otherwise), 20k env steps each; the deterministic policy at the end
  is evaluated over 20 episodes (as rl-zoo does; not timed), the target is -200;
- dqn-cartpole: cartpole_dqn.yaml (100k env steps) against SB3 DQN (rl-zoo CartPole-v1, its
  50k env steps), evaluated the same way, target 475;
- ppo-cartpole: cartpole_ppo.yaml (the demo) against SB3 PPO (rl-zoo CartPole-v1), both
  stopped once the mean return of the last 100 training episodes reaches 475.

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
from pathlib import Path

from rlfarm.experiments.bench.process_cost import run_measured
from rlfarm.experiments.bench.seeds import cpu_model, parse_seeds

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EVAL_EPISODES = 20

SB3_TRAIN = """
import json, sys, torch
threads, case, seed, model_path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

class StopAtTarget(BaseCallback):
    solved = False
    def _on_step(self):
        infos = self.model.ep_info_buffer  # the last 100 episodes
        if len(infos) == infos.maxlen and sum(i["r"] for i in infos) / len(infos) >= 475.0:
            self.solved = True
            return False
        return True

callback = None
if case == "sac-pendulum":  # rl-zoo hyperparams/sac.yml Pendulum-v1
    model = SAC("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1, seed=seed), learning_rate=1e-3,
                seed=seed, device="cpu", verbose=0)
    steps = 20_000
elif case == "dqn-cartpole":  # rl-zoo hyperparams/dqn.yml CartPole-v1
    model = DQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=seed), learning_rate=2.3e-3,
                batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99, target_update_interval=10,
                train_freq=256, gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)
    steps = 50_000
else:  # ppo-cartpole: rl-zoo hyperparams/ppo.yml CartPole-v1
    linear = lambda start: (lambda remaining: remaining * start)
    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=seed), n_steps=32, batch_size=256,
                gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3),
                clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)
    steps, callback = 100_000, StopAtTarget()
model.learn(total_timesteps=steps, callback=callback)
model.save(model_path)
print(json.dumps({"env_steps": model.num_timesteps, "solved": None if callback is None else callback.solved}))
"""

SB3_EVAL = """
import json, sys, torch
torch.set_num_threads(1)
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
case, model_path, episodes = sys.argv[1], sys.argv[2], int(sys.argv[3])
algo, env_id = {"sac-pendulum": (SAC, "Pendulum-v1"), "dqn-cartpole": (DQN, "CartPole-v1"),
                "ppo-cartpole": (PPO, "CartPole-v1")}[case]
model = algo.load(model_path, device="cpu")
mean, std = evaluate_policy(model, make_vec_env(env_id, n_envs=1, seed=12345), n_eval_episodes=episodes,
                            deterministic=True)
print(json.dumps({"eval_return": float(mean)}))
"""

CASES = {  # name: (config, target, judged by evaluation (else by the training return))
    "sac-pendulum": ("pendulum_sac.yaml", -200.0, True),
    "dqn-cartpole": ("cartpole_dqn.yaml", 475.0, True),
    "ppo-cartpole": ("cartpole_ppo.yaml", 475.0, False),
}


def run_rlfarm(case: str, seed: int, threads: int, work: str) -> dict:
    config, target, by_eval = CASES[case]
    run_dir = os.path.join(work, f"rlfarm-{case}-{seed}")
    argv = [sys.executable, "-m", "rlfarm.experiments.cli", "train", str(CONFIGS / config), "--run-dir", run_dir,
            "--set", f"seed={seed}", "--set", "log.progress=none", "--set", "farm.mode=serial"]
    if not by_eval:
        argv += ["--set", f"stop.target_return={target}", "--set", "stop.continue_after_target=false"]
    env = dict(os.environ, RLFARM_TORCH_THREADS=str(threads))
    cost = _measured(argv, env)
    summary = json.loads(Path(run_dir, "summary.json").read_text())
    row = {**cost, "env_steps": summary["env_steps"], "solved_at_env_steps": summary.get("solved_at_env_steps")}
    if by_eval:
        done = subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", "eval", run_dir, "--episodes",
                               str(EVAL_EPISODES)], env=env, capture_output=True, text=True, check=True)
        row["eval_return"] = json.loads(done.stdout.strip().splitlines()[-1])["return_mean"]
    return _judge(row, target, by_eval)


def run_sb3(case: str, seed: int, threads: int, work: str) -> dict:
    _, target, by_eval = CASES[case]
    model_path = os.path.join(work, f"sb3-{case}-{seed}.zip")
    out = os.path.join(work, f"sb3-{case}-{seed}.out")
    cost = _measured([sys.executable, "-c", SB3_TRAIN, str(threads), case, str(seed), model_path],
                     dict(os.environ), out)
    trained = json.loads(Path(out).read_text().strip().splitlines()[-1])
    row = {**cost, "env_steps": trained["env_steps"],
           "solved_at_env_steps": trained["env_steps"] if trained["solved"] else None}
    if by_eval:
        done = subprocess.run([sys.executable, "-c", SB3_EVAL, case, model_path, str(EVAL_EPISODES)],
                              capture_output=True, text=True, check=True)
        row["eval_return"] = json.loads(done.stdout.strip().splitlines()[-1])["eval_return"]
    return _judge(row, target, by_eval)


def _measured(argv: list[str], env: dict, out: str | None = None) -> dict:
    with open(out or os.devnull, "w", encoding="utf-8") as stream:
        cost = run_measured(argv, env=env, stdout=stream, stderr=subprocess.PIPE if out else stream)
    if cost["exit_code"]:
        sys.exit(f"sb3_cost: {' '.join(argv[:5])} ... failed with exit {cost['exit_code']}")
    return cost


def _judge(row: dict, target: float, by_eval: bool) -> dict:
    row["reached"] = (row["eval_return"] >= target) if by_eval else row["solved_at_env_steps"] is not None
    return row


def table(runs: dict[str, dict[str, list[dict]]]) -> str:
    """Markdown: one line per case and framework, medians over the seeds."""
    lines = ["| case | framework | reached target | median env steps | median eval return | median wall s "
             "| median CPU core-s | median joules |", "|---|---|---|---|---|---|---|---|"]
    for case, frameworks in runs.items():
        for name, rows in frameworks.items():
            evals = [r["eval_return"] for r in rows if r.get("eval_return") is not None]
            joules = [r["joules"] for r in rows if r.get("joules") is not None]
            steps = [r["solved_at_env_steps"] or r["env_steps"] for r in rows]
            median_eval = f"{statistics.median(evals):.1f}" if evals else "-"
            median_joules = f"{statistics.median(joules):.0f}" if joules else "n/a"
            lines.append(f"| {case} | {name} | {sum(r['reached'] for r in rows)}/{len(rows)} "
                         f"| {statistics.median(steps):,.0f} | {median_eval} "
                         f"| {statistics.median(r['wall_s'] for r in rows):.1f} "
                         f"| {statistics.median(r['cpu_core_s'] for r in rows):.1f} | {median_joules} |")
    return "\n".join(lines)


def ratios(runs: dict[str, dict[str, list[dict]]]) -> str:
    """rlfarm's wall time and CPU core-seconds over SB3's, per seed (each pair ran back to back),
    and their medians: the pairs share the machine's load, so the ratio is steadier than either time."""
    lines = []
    for case, frameworks in runs.items():
        pairs = list(zip(frameworks["rlfarm"], frameworks["sb3"]))
        if not pairs:
            continue
        wall = [ours["wall_s"] / theirs["wall_s"] for ours, theirs in pairs]
        cpu = [ours["cpu_core_s"] / theirs["cpu_core_s"] for ours, theirs in pairs]
        lines.append(f"{case}: rlfarm / SB3 wall time per seed {', '.join(f'{r:.3f}' for r in wall)}, "
                     f"median {statistics.median(wall):.3f}; CPU core-s median {statistics.median(cpu):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="(default: %(default)s)")
    parser.add_argument("--seeds", default="0-4", help="(default: %(default)s)")
    parser.add_argument("--torch-threads", type=int, default=1, help="for both (default: %(default)s)")
    parser.add_argument("--out", default=None, help="also write every run and the table as JSON here")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    if not cases or any(c not in CASES for c in cases) or args.torch_threads < 1:
        print(f"sb3_cost: --cases must list some of {', '.join(CASES)}; --torch-threads >= 1", file=sys.stderr)
        return 2
    try:
        import stable_baselines3  # noqa: F401 - only to fail early with a clear message
    except ImportError:
        print("sb3_cost: stable-baselines3 is not installed; pip install -e '.[compare]'", file=sys.stderr)
        return 2
    seeds = parse_seeds(args.seeds)
    runs: dict[str, dict[str, list[dict]]] = {case: {"rlfarm": [], "sb3": []} for case in cases}
    with tempfile.TemporaryDirectory(prefix="sb3-cost-") as work:
        for case in cases:
            for seed in seeds:
                order = ["rlfarm", "sb3"] if seed % 2 == 0 else ["sb3", "rlfarm"]
                for name in order:
                    runner = run_rlfarm if name == "rlfarm" else run_sb3
                    load_before = os.getloadavg()[0]
                    row = {"seed": seed, **runner(case, seed, args.torch_threads, work)}
                    # the machine may be shared: its load beside each time says how far to trust it
                    row["load_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                    runs[case][name].append(row)
                    print(f"{case} seed {seed} {name}: {row['wall_s']:.1f} s, {row['cpu_core_s']:.1f} core-s, "
                          f"{row['env_steps']:,} env steps, eval {row.get('eval_return', '-')}, "
                          f"{'reached' if row['reached'] else 'NOT reached'}, load {row['load_1min']}",
                          file=sys.stderr)
    text = table(runs) + "\n" + ratios(runs)
    print(text)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); torch threads {args.torch_threads}")
    if args.out:
        Path(args.out).write_text(json.dumps({"runs": runs, "table": text, "cpu": cpu_model()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
