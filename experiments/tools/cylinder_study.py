"""The resolution study of rlfarm/CylinderJets-v0 against Schäfer & Turek's case 2D-2.

For each resolution (cells per diameter) it takes the developed, uncontrolled state (made and
cached by the env on first use), runs ``--duration`` more time units, and measures max C_D,
max C_L and the Strouhal number from the lift's period. It prints a table, writes the figures
as JSON, and draws the convergence plot and the C_D/C_L traces (matplotlib PNG).

    python experiments/tools/cylinder_study.py --resolutions 10,14,20,28 \
        --out docs/img/cylinder

Only numpy, gymnasium (through the env) and matplotlib are imported.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REFERENCE = {"drag_max": (3.22, 3.24), "lift_max": (0.99, 1.01), "strouhal": (0.295, 0.305)}
"""Schäfer & Turek 1996, case 2D-2: the intervals of the benchmark's reference values."""
LABELS = {"drag_max": "max $C_D$", "lift_max": "max $C_L$", "strouhal": "St = f D / U"}


def measure(resolution: int, duration: float) -> dict:
    from rlfarm.envs.cylinder import CylinderJetsBatched, shedding_period_steps

    env = CylinderJetsBatched(1, resolution=resolution)
    start = time.perf_counter()
    env.reset(seed=0)  # makes the developed state on first use
    made = time.perf_counter() - start
    lattice, scale = env.lattice, env._force_scale
    steps = round(duration / lattice.dt)
    start = time.perf_counter()
    forces = np.array([lattice.step(np.zeros(1))[0] for _ in range(steps)]) * scale
    elapsed = time.perf_counter() - start
    drag, lift = forces[:, 0], forces[:, 1]
    period = shedding_period_steps(lift) * lattice.dt
    return {"resolution": resolution, "cells": lattice.nx * lattice.ny, "dt": lattice.dt, "tau": lattice.tau,
            "drag_max": float(drag.max()), "drag_mean": float(drag.mean()), "lift_max": float(lift.max()),
            "strouhal": 0.1 / period, "mlups": steps * lattice.nx * lattice.ny / elapsed / 1e6,
            "develop_seconds": made, "time": (np.arange(steps) * lattice.dt).tolist(),
            "drag": drag.tolist(), "lift": lift.tolist()}


def plot(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda row: row["resolution"])
    resolutions = [row["resolution"] for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (name, (low, high)) in zip(axes, REFERENCE.items()):
        ax.axhspan(low, high, color="tab:green", alpha=0.3, label="Schäfer–Turek interval")
        ax.axhspan(0.95 * low, 1.05 * high, color="tab:green", alpha=0.1, label="interval ± 5%")
        ax.plot(resolutions, [row[name] for row in rows], "o-", color="tab:blue", label="rlfarm LBM")
        ax.set_xlabel("cells per diameter")
        ax.set_title(LABELS[name])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths = [out.with_name(out.name + "_convergence.png")]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
    for row in rows:
        axes[0].plot(row["time"], row["drag"], lw=1, label=f"{row['resolution']} cells/D")
        axes[1].plot(row["time"], row["lift"], lw=1)
    axes[0].set_ylabel("$C_D$")
    axes[1].set_ylabel("$C_L$")
    axes[1].set_xlabel("time after the developed state (U = 1, D = 0.1)")
    axes[0].legend(fontsize=8, ncol=len(rows))
    fig.tight_layout()
    paths.append(out.with_name(out.name + "_traces.png"))
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", default="10,14,20,28")
    parser.add_argument("--duration", type=float, default=1.5, help="time units measured (default 1.5)")
    parser.add_argument("--out", default="docs/img/cylinder", help="path prefix of the PNG and JSON files")
    args = parser.parse_args(argv)
    try:
        resolutions = [int(r) for r in args.resolutions.split(",")]
    except ValueError:
        print(f"--resolutions: expected comma-separated ints, got {args.resolutions!r}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'cells/D':>8} {'cells':>8} {'tau':>7} {'max C_D':>8} {'max C_L':>8} {'St':>7} {'MLUPS':>7}")
    for resolution in resolutions:
        row = measure(resolution, args.duration)
        rows.append(row)
        print(f"{resolution:>8} {row['cells']:>8} {row['tau']:>7.4f} {row['drag_max']:>8.4f} "
              f"{row['lift_max']:>8.4f} {row['strouhal']:>7.4f} {row['mlups']:>7.2f}", flush=True)
        summary = [{k: v for k, v in r.items() if k not in ("time", "drag", "lift")} for r in rows]
        out.with_name(out.name + "_study.json").write_text(json.dumps(summary, indent=1))
    for path in plot(rows, out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
