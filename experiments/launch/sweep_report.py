"""What a finished sweep reports: one row per trial from its run dir, ranked best first, and
written as sweep.csv, sweep.md and sweep.png in the sweep dir (experiments/launch/sweep.py
runs the trials and calls `table`, `rank` and `write_reports`)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlfarm.experiments.errors import ConfigError

if TYPE_CHECKING:
    from rlfarm.experiments.launch.sweep import SweepResult, SweepSettings

ROW_FIELDS = ("trial", "episode_return_mean", "solved", "env_steps", "exit_reason", "stopped_early",
              "wall_s", "run_dir")


def table(rows: list[dict[str, Any]], trials_dir: Path, settings: SweepSettings,
          interrupted: bool = False) -> list[dict[str, Any]]:
    """One row per trial from its run dir's summary. A trial without summary.json (it never
    ran, or its process died before writing it) has no value to rank by: Tune's last report
    alone is not a result."""
    out = []
    for row in rows:
        run_dir = trials_dir / f"trial-{row['trial_id']}"
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        steps = summary.get("env_steps", row["last"].get("env_steps"))
        if summary:
            metric = row.get("best") if settings.rank_by == "best" else \
                summary.get(settings.metric, row["last"].get(settings.metric))
        else:
            metric = None
        reason = summary.get("exit_reason") or ("error" if row["error"] else "no summary")
        entry = {
            "trial": row["trial_id"],
            **{name: row["params"].get(name) for name in settings.parameters},
            "episode_return_mean": summary.get("episode_return_mean"),
            "solved": summary.get("solved"),
            "env_steps": None if steps is None else int(steps),
            "exit_reason": "interrupted" if interrupted and reason in ("callback", "no summary") else reason,
            "stopped_early": (settings.asha is not None and not interrupted
                              and summary.get("exit_reason") == "callback" and not summary.get("solved")),
            "wall_s": summary.get("wall_s"),
            "run_dir": str(run_dir),
            "_metric": metric,
        }
        out.append(entry)
    return out


def rank(rows: list[dict[str, Any]], settings: SweepSettings) -> list[dict[str, Any]]:
    """Best first by the metric among the trials that ran to their own stop, then the trials
    ASHA stopped early (their values come from a shorter budget: ASHA judged them worse at a
    rung), then the trials without a value (no summary.json: they never ran, or died)."""
    sign = -1.0 if settings.mode == "max" else 1.0

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row["_metric"]
        if value is None or not math.isfinite(float(value)):
            return (2, 0.0)
        return (1 if row["stopped_early"] else 0, sign * float(value))

    return sorted(rows, key=key)


def write_reports(result: SweepResult, settings: SweepSettings) -> None:
    """sweep.csv, sweep.md and sweep.png in the sweep dir."""
    columns = [name for name in result.rows[0] if not name.startswith("_")] if result.rows else list(ROW_FIELDS)
    with open(result.dir / "sweep.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result.rows)
    shown = [name for name in columns if name != "run_dir"]
    lines = [f"# Sweep {result.dir.name}", "",
             f"{len(result.rows)} trials, best first by {settings.metric} ({settings.mode}, rank_by: "
             f"{settings.rank_by}: {RANK_BY_TEXT[settings.rank_by]}); trials stopped early by ASHA after those that ran to their "
             "stop, trials without a summary last; "
             f"run dirs under `{result.dir / 'trials'}`.", "",
             "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(row.get(name)) for name in shown) + " |" for row in result.rows]
    (result.dir / "sweep.md").write_text("\n".join(lines) + "\n")
    write_plot(result, list(settings.parameters))


RANK_BY_TEXT = {"last": "the value at the trial's end", "best": "the best value the trial reported"}


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_plot(result: SweepResult, parameters: list[str]) -> None:
    """Every trial's charts/episode_return_mean against env steps, best trial on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlfarm.experiments.api import Run

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row in reversed(result.rows):
        try:
            steps, values = Run(row["run_dir"]).scalars("charts/episode_return_mean")
        except (KeyError, ConfigError):
            continue
        params = ", ".join(f"{name.split('.')[-1]}={cell(row[name])}" for name in parameters)
        ax.plot(steps, values, lw=2.0 if row is result.rows[0] else 1.0,
                ls="--" if row["stopped_early"] else "-", label=f"{row['trial']} {params}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (mean of the window)")
    ax.set_title(f"{result.dir.name}: dashed = stopped early by ASHA")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(result.dir / "sweep.png", dpi=100)
    plt.close(fig)


def settings_has_asha(result: SweepResult) -> bool:
    return any(row["stopped_early"] for row in result.rows) or \
        bool(yaml.safe_load((result.dir / "sweep.yaml").read_text()).get("sweep", {}).get("asha"))
