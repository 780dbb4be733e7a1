"""What `rlfarm scale` writes for its measured points: scaling.csv, scaling.md (the table it
also prints), scaling.png and one TensorBoard HPARAMS entry per point (experiments/bench/scale.py
measures them)."""
from __future__ import annotations

import csv
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlfarm.experiments.bench.scale import Point

COLUMNS = ("num_runners", "envs_per_runner", "total_envs", "num_learners", "nodes", "mode", "iterations",
           "env_steps", "seconds", "env_steps_per_s", "learner_samples_per_s", "sample_ms",
           "update_ms", "efficiency", "setup_s")


def write_csv(points: list[Point], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for point in points:
            writer.writerow(point.row())


def markdown_table(points: list[Point]) -> str:
    show_learners = len({p.num_learners for p in points}) > 1
    show_nodes = any(p.nodes for p in points)
    head = ["runners", "envs/runner", "total envs"] + (["learners"] if show_learners else []) + \
        (["nodes"] if show_nodes else []) + ["env steps/s", "learner samples/s", "efficiency"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for p in points:
        cells = [str(p.num_runners), str(p.envs_per_runner), str(p.total_envs)]
        cells += [str(p.num_learners)] if show_learners else []
        cells += [str(p.nodes)] if show_nodes else []
        cells += [f"{p.env_steps_per_s:,.0f}", f"{p.learner_samples_per_s:,.0f}", f"{p.efficiency:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(points: list[Point], path: str, command: str, machine: str) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(f"# Scaling: {points[0].mode} farm\n\n`{command}`\n\n{machine}\n\n")
        stream.write(markdown_table(points) + "\n\n")
        stream.write("Efficiency: env steps/s against ideal linear scaling in runners from the "
                     "smallest point with the same envs/runner, learners and nodes.\n")


def write_plot(points: list[Point], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_eff) = plt.subplots(1, 2, figsize=(10, 4))
    groups: dict[tuple[int, int, int], list[Point]] = {}
    for point in points:
        groups.setdefault((point.envs_per_runner, point.num_learners, point.nodes), []).append(point)
    for (envs, learners, nodes), group in sorted(groups.items()):
        group.sort(key=lambda p: p.num_runners)
        runners = [p.num_runners for p in group]
        label = f"{envs} envs/runner" + (f", {learners} learners" if len(groups) > 1 else "") + \
            (f", {nodes} nodes" if nodes else "")
        line, = ax_rate.plot(runners, [p.env_steps_per_s for p in group], "o-", label=label)
        base = group[0]
        ax_rate.plot(runners, [base.env_steps_per_s * r / base.num_runners for r in runners], ":",
                     color=line.get_color(), label=f"ideal ({label})")
        ax_eff.plot(runners, [p.efficiency for p in group], "o-", color=line.get_color(), label=label)
    ax_rate.set(xlabel="runners", ylabel="env steps/s", title="throughput")
    ax_rate.set_ylim(bottom=0)
    ax_rate.xaxis.get_major_locator().set_params(integer=True)
    ax_eff.xaxis.get_major_locator().set_params(integer=True)
    ax_eff.set(xlabel="runners", ylabel="efficiency vs linear", title="scaling efficiency", ylim=(0, 1.2))
    ax_eff.axhline(1.0, color="gray", lw=0.5)
    for ax in (ax_rate, ax_eff):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_hparams(point: Point, tb_dir: str) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tb_dir) as writer:
        writer.add_hparams(
            {"num_runners": point.num_runners, "envs_per_runner": point.envs_per_runner,
             "total_envs": point.total_envs, "num_learners": point.num_learners, "nodes": point.nodes,
             "mode": point.mode},
            {"scale/env_steps_per_s": point.env_steps_per_s,
             "scale/learner_samples_per_s": point.learner_samples_per_s,
             "scale/efficiency": point.efficiency},
            run_name=".")
