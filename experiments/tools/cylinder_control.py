"""How much drag does a trained CylinderJets policy remove? Controlled vs uncontrolled wakes.

Runs the run's newest valid checkpoint (deterministic actions) and the zero action on copies
that start from the same developed states (same seed), for ``--steps`` actions, and compares
the mean C_D over the second half (the controlled wake needs a few shedding periods to settle,
as in Rabault et al. 2019). Draws C_D(t) of both and their final vorticity fields (PNG).

    python experiments/tools/cylinder_control.py RUN_DIR --copies 8 --steps 160 \
        --out docs/img/cylinder_control
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def run(run_dir: str, copies: int, steps: int, seed: int, resolution: int | None = None) -> dict:
    from rlfarm import envs
    from rlfarm.experiments.config import load_config
    from rlfarm.experiments.run.evaluate import load_policy
    from rlfarm.experiments.run.run_dirs import list_checkpoints

    cfg = load_config(os.path.join(run_dir, "config.yaml"))
    kwargs = {**(cfg.env.kwargs or {}), "max_episode_steps": steps + 1, "render_mode": "rgb_array"}
    if resolution is not None:  # the policy on another lattice: its probes sit at the same places
        kwargs["resolution"] = resolution
    controlled = envs.make(cfg.env.id, copies, seed=seed, **kwargs)
    uncontrolled = envs.make(cfg.env.id, copies, seed=seed, **kwargs)
    policy, checkpoint, extra = load_policy(cfg, controlled, list_checkpoints(run_dir)[::-1], seed)
    obs, _ = controlled.reset()
    uncontrolled.reset()
    zeros = np.zeros((copies, 1), np.float32)
    drag = np.zeros((2, steps, copies))
    lift = np.zeros((2, steps, copies))
    actions_taken = np.zeros((steps, copies))
    for t in range(steps):
        actions, _, _ = policy.act(obs, deterministic=True)
        env_actions = policy.env_actions(actions)
        obs, _, _, _, infos = controlled.step(env_actions)
        drag[0, t], lift[0, t] = infos["drag_coefficient"], infos["lift_coefficient"]
        actions_taken[t] = np.clip(np.asarray(env_actions)[:, 0], -1, 1)
        _, _, _, _, infos = uncontrolled.step(zeros)
        drag[1, t], lift[1, t] = infos["drag_coefficient"], infos["lift_coefficient"]
    half = slice(steps // 2, None)
    mean_drag = drag[:, half].mean(axis=(1, 2))
    unwrapped = controlled.unwrapped
    return {
        "checkpoint": checkpoint, "env_steps": int(extra.get("farm", {}).get("env_steps", 0)),
        "copies": copies, "steps": steps, "control_dt": unwrapped.control_dt,
        "resolution": unwrapped.resolution,
        "drag_controlled": float(mean_drag[0]), "drag_uncontrolled": float(mean_drag[1]),
        "drag_reduction_percent": float(100 * (1 - mean_drag[0] / mean_drag[1])),
        "drag_reduction_per_copy_percent": (100 * (1 - drag[0, half].mean(0) / drag[1, half].mean(0))).tolist(),
        "abs_lift_controlled": float(np.abs(lift[0, half]).mean()),
        "abs_lift_uncontrolled": float(np.abs(lift[1, half]).mean()),
        "mean_abs_action": float(np.abs(actions_taken[half]).mean()),
        "mean_abs_jet_fraction_of_inflow": float(np.abs(actions_taken[half]).mean() * unwrapped.max_jet),
        "_drag": drag, "_frames": (controlled.render(), uncontrolled.render()),
    }


def plot(result: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drag, dt = result["_drag"], result["control_dt"]
    time = (np.arange(drag.shape[1]) + 1) * dt
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(time, drag[1].mean(axis=1), color="tab:gray", label="uncontrolled (mean of copies)")
    ax.plot(time, drag[0].mean(axis=1), color="tab:blue", label="PPO policy (mean of copies)")
    ax.axvspan(time[len(time) // 2], time[-1], color="tab:green", alpha=0.1, label="averaged")
    ax.set_xlabel("time (U = 1, D = 0.1)")
    ax.set_ylabel("$C_D$ per action")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [out.with_name(out.name + "_drag.png")]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    controlled, uncontrolled = result["_frames"]
    gap = np.full((8, controlled.shape[1], 3), 255, np.uint8)
    paths.append(out.with_name(out.name + "_wakes.png"))
    plt.imsave(paths[1], np.concatenate([uncontrolled, gap, controlled], axis=0))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--steps", type=int, default=160, help="actions per copy (default 160, 4 time units)")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--resolution", type=int, default=None,
                        help="run the policy on this lattice instead of the run's (cells per diameter)")
    parser.add_argument("--out", default=None, help="path prefix of the PNG and JSON files (none: print only)")
    args = parser.parse_args(argv)
    for name in ("copies", "steps"):
        if getattr(args, name) < 2:
            print(f"--{name}: expected an int >= 2, got {getattr(args, name)}", file=sys.stderr)
            return 2
    if not os.path.exists(os.path.join(args.run_dir, "config.yaml")):
        print(f"RUN_DIR: {args.run_dir} is not a run dir (no config.yaml in it)", file=sys.stderr)
        return 2
    result = run(args.run_dir, args.copies, args.steps, args.seed, args.resolution)
    summary = {k: v for k, v in result.items() if not k.startswith("_")}
    print(json.dumps(summary, indent=1))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(out.name + ".json").write_text(json.dumps(summary, indent=1))
        for path in plot(result, out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
