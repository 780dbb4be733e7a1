"""`rlfarm scale CONFIG`: how throughput grows with runners and envs per runner.

The config is an experiment config plus a `sweep` section:

    sweep:
      num_runners: [1, 2, 4]       # farm.num_runners of each point
      envs_per_runner: [256]       # env.envs_per_runner of each point
      num_learners: [1]            # optional: farm.num_learners of each point
      nodes: [1, 2]                # optional: runners on the first N worker nodes only
      seconds: 10                  # measure each point this long ...
      env_steps: 0                 # ... or for this many env steps (whichever is set; both: first reached)
      warmup_iterations: 2         # updates run before measuring (actor start-up, first allocations)

`nodes` needs a cluster whose k-th worker node advertises the custom resource `rf_nodes_N`
for every swept N >= k (`node_sweep_resources` writes that map for `ray start --resources`;
docs/results/scaling-model.md does it on the test hosts): a point with N nodes asks each runner for
one `rf_nodes_N`, which only the first N worker nodes have.

Every combination is one point. Each point builds the farm of the config
(`cluster.make_farm`), runs warm-up updates, then drives `farm.iterate()` for the point's
budget and measures env steps consumed per second of wall time and the learner's samples
per second. The outputs, in --out (default <log.dir>/scale-<name>-<time>/):

- scaling.csv and scaling.md: one row per point. Efficiency is throughput against ideal
  linear scaling in runners from the smallest point with the same envs/runner and learners:
  (steps/s / base steps/s) / (runners / base runners). 1.0 is perfect scaling.
- scaling.png: env steps/s (with the ideal line) and efficiency against runners.
- tb/<point>/: a TensorBoard run per point, its per-update scalars plus hparams
  (the point's runners, envs, learners; its measured throughput and efficiency).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from rlfarm.experiments.bench.scale_report import markdown_table, write_csv, write_hparams, write_markdown, write_plot
from rlfarm.experiments.errors import ConfigError

if TYPE_CHECKING:
    from rlfarm.experiments.config import ExperimentConfig

NODE_RESOURCE = "rf_nodes_{}"
"""The custom resource that the first N worker nodes of a node sweep advertise."""

@dataclass
class SweepConfig:
    """The `sweep` section of a scaling config."""

    num_runners: list[int] = field(default_factory=lambda: [1, 2])
    """farm.num_runners values to measure."""
    envs_per_runner: list[int] | None = None
    """env.envs_per_runner values; None keeps the config's own."""
    num_learners: list[int] | None = None
    """farm.num_learners values; None keeps the config's own."""
    nodes: list[int] | None = None
    """Worker nodes the runners may use (see the module docstring); None: no constraint."""
    seconds: float = 10.0
    """Measured wall seconds per point (0: no time limit)."""
    env_steps: int = 0
    """Measured env steps per point (0: no step limit)."""
    warmup_iterations: int = 2
    """Learner updates per point before measuring."""


@dataclass
class Point:
    """One measured point of the sweep."""

    num_runners: int
    envs_per_runner: int
    num_learners: int
    mode: str
    nodes: int = 0
    """Worker nodes the runners were confined to; 0: unconstrained."""
    iterations: int = 0
    env_steps: int = 0
    seconds: float = 0.0
    env_steps_per_s: float = 0.0
    learner_samples_per_s: float = 0.0
    sample_ms: float = 0.0
    update_ms: float = 0.0
    efficiency: float = float("nan")
    setup_s: float = 0.0
    """Building the farm plus the warm-up updates (actor start-up on Ray)."""

    @property
    def total_envs(self) -> int:
        return self.num_runners * self.envs_per_runner

    @property
    def label(self) -> str:
        return f"r{self.num_runners}_e{self.envs_per_runner}_l{self.num_learners}" + \
            (f"_n{self.nodes}" if self.nodes else "")

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "total_envs": self.total_envs}


# ---- config -----------------------------------------------------------------------------

def load_raw_with_section(path: str, overrides: list[str], section: str = "sweep") -> tuple[dict[str, Any], Any]:
    """The raw experiment mapping (overrides applied, `section` taken out) and that section."""
    from rlfarm.experiments.config import StrictLoader, apply_overrides, check_config_size, load_config, name_from_path

    check_config_size(path, overrides)
    try:
        with open(path, encoding="utf-8") as stream:
            raw = yaml.load(stream, Loader=StrictLoader) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError:
        load_config(path)  # raises the loader's own one-line YAML error
        raise
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    raw.setdefault("name", name_from_path(path))
    raw = apply_overrides(raw, overrides)
    return raw, raw.pop(section, None)


def load_sweep(path: str, overrides: list[str]) -> tuple[dict[str, Any], SweepConfig]:
    """The raw experiment mapping (without `sweep`, overrides applied) and the sweep section."""
    from rlfarm.experiments.config import config_from_dict

    raw, section = load_raw_with_section(path, overrides)
    sweep = parse_sweep(section)
    config_from_dict(copy.deepcopy(raw))  # the base config must be valid on its own
    return raw, sweep


def parse_sweep(section: Any) -> SweepConfig:
    if section is None:
        raise ConfigError("sweep: missing; add e.g. `sweep: {num_runners: [1, 2], seconds: 10}`")
    if not isinstance(section, dict):
        raise ConfigError(f"sweep: expected a mapping, got {section!r}")
    known = set(SweepConfig.__dataclass_fields__)
    for key in section:
        if key not in known:
            raise ConfigError(f"sweep.{key}: unknown key; valid keys: {', '.join(sorted(known))}")
    for key in ("num_runners", "envs_per_runner", "num_learners", "nodes"):
        values = section.get(key)
        if values is None:
            continue
        if isinstance(values, int) and not isinstance(values, bool):
            values = section[key] = [values]
        if not isinstance(values, list) or not values or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise ConfigError(f"sweep.{key}: expected a list of integers >= 1, got {values!r}")
    sweep = SweepConfig(**section)
    for key in ("seconds", "env_steps", "warmup_iterations"):
        value = getattr(sweep, key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"sweep.{key}: expected a number >= 0, got {value!r}")
    if not (sweep.seconds or sweep.env_steps):
        raise ConfigError("sweep: set seconds or env_steps (each point's measuring budget)")
    return sweep


def sweep_points(raw: dict[str, Any], sweep: SweepConfig) -> list[tuple[Point, Any]]:
    """(Point, ExperimentConfig) for every combination, smallest first."""
    from rlfarm.experiments.config import config_from_dict

    base = config_from_dict(copy.deepcopy(raw))
    envs = sweep.envs_per_runner or [base.env.envs_per_runner]
    learners = sweep.num_learners or [base.farm.num_learners]
    points = []
    for envs_per_runner, num_learners, nodes, num_runners in itertools.product(
            sorted(set(envs)), sorted(set(learners)), sorted(set(sweep.nodes or [0])),
            sorted(set(sweep.num_runners))):
        point_raw = copy.deepcopy(raw)
        point_raw.setdefault("env", {})["envs_per_runner"] = envs_per_runner
        farm = point_raw.setdefault("farm", {})
        farm.update(num_runners=num_runners, num_learners=num_learners)
        if nodes:
            runner = farm["runner_resources"] = dict(farm.get("runner_resources") or {"num_cpus": 1})
            runner["resources"] = {**(runner.get("resources") or {}), NODE_RESOURCE.format(nodes): 1}
        cfg = config_from_dict(point_raw)
        points.append((Point(num_runners, envs_per_runner, num_learners, cfg.farm.mode, nodes), cfg))
    return points


def batch_env_steps(cfg: Any) -> int:
    """Env steps per learner update of a point's config (cluster/farm_base.py's rule)."""
    return cfg.farm.batch_size or cfg.farm.num_runners * cfg.env.envs_per_runner * cfg.farm.fragment_length


def batch_note(points: list[tuple[Point, Any]]) -> str:
    """Says whether the points learn with one batch (strong scaling) or a batch that grows
    with them (weak scaling), so nobody reads a weak-scaling sweep as the same learning."""
    batches = sorted({batch_env_steps(cfg) for _, cfg in points})
    if len(batches) == 1:
        return f"rlfarm scale: strong scaling: every point learns from {batches[0]} env steps per update"
    return (f"rlfarm scale: weak scaling: the batch grows with the point ({batches[0]} to {batches[-1]} env "
            "steps per update: runners x envs x fragment_length), so the points' algorithms differ; "
            "set farm.batch_size to hold it fixed (docs/scaling.md)")


def node_sweep_resources(node_index: int, swept_nodes: list[int], slots: int) -> dict[str, int]:
    """The custom resources of worker node `node_index` (1-based) for a sweep over `swept_nodes`:
    `slots` runners' worth of `rf_nodes_N` for every N that includes this node."""
    return {NODE_RESOURCE.format(n): slots for n in sorted(set(swept_nodes)) if n >= node_index}


# ---- measuring ---------------------------------------------------------------------------

def measure(point: Point, cfg: ExperimentConfig, sweep: SweepConfig, tb_dir: str) -> Point:
    """Run one point: warm up, then iterate for the budget while timing."""
    from torch.utils.tensorboard import SummaryWriter

    from rlfarm import cluster

    budget_steps = sweep.env_steps or None
    setup_start = time.perf_counter()
    farm = cluster.make_farm(cfg.env, cfg.model, cfg.algo, cfg.farm, cfg.seed,
                             total_env_steps=None)
    writer = SummaryWriter(tb_dir)
    try:
        for _ in range(int(sweep.warmup_iterations)):
            farm.iterate()
        start_steps, start = farm.env_steps, time.perf_counter()
        point.setup_s = start - setup_start
        learner_rates, sample_ms, update_ms = [], [], []
        while True:
            result = farm.iterate()
            elapsed = time.perf_counter() - start
            steps = result["env_steps"] - start_steps
            learner_rates.append(float(result.get("perf/learner_samples_per_s", math.nan)))
            sample_ms.append(float(result.get("perf/sample_ms", math.nan)))
            update_ms.append(float(result.get("perf/update_ms", math.nan)))
            writer.add_scalar("scale/env_steps_per_s", steps / max(elapsed, 1e-9), steps)
            writer.add_scalar("perf/learner_samples_per_s", learner_rates[-1], steps)
            if (sweep.seconds and elapsed >= sweep.seconds) or (budget_steps and steps >= budget_steps):
                break
    finally:
        farm.close()
        writer.close()
    point.iterations, point.env_steps, point.seconds = len(learner_rates), int(steps), elapsed
    point.env_steps_per_s = steps / elapsed
    point.learner_samples_per_s = _nanmean(learner_rates)
    point.sample_ms, point.update_ms = _nanmean(sample_ms), _nanmean(update_ms)
    return point


def add_efficiency(points: list[Point]) -> None:
    """Efficiency against linear scaling in runners from the smallest point of each group."""
    groups: dict[tuple[int, int, int], list[Point]] = {}
    for point in points:
        groups.setdefault((point.envs_per_runner, point.num_learners, point.nodes), []).append(point)
    for group in groups.values():
        base = min(group, key=lambda p: p.num_runners)
        for point in group:
            ideal = base.env_steps_per_s * point.num_runners / base.num_runners
            point.efficiency = point.env_steps_per_s / ideal if ideal > 0 else math.nan


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


# ---- the command ---------------------------------------------------------------------------

def main(args: argparse.Namespace) -> int:
    raw, sweep = load_sweep(args.config, list(args.overrides))
    if args.address:
        raw.setdefault("farm", {})["address"] = args.address
    points = sweep_points(raw, sweep)
    cfg0 = points[0][1]
    out = args.out or os.path.join(cfg0.log.dir, f"scale-{cfg0.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(os.path.join(out, "tb"), exist_ok=True)
    session = _start_ray_once([cfg for _, cfg in points])
    print(batch_note(points), file=sys.stderr, flush=True)
    measured: list[Point] = []
    try:
        for index, (point, cfg) in enumerate(points, 1):
            print(f"rlfarm scale: point {index}/{len(points)}: {point.num_runners} runners x "
                  f"{point.envs_per_runner} envs, {point.num_learners} learner(s), batch {batch_env_steps(cfg)}"
                  + (f" on {point.nodes} node(s)" if point.nodes else "") + " ...", file=sys.stderr, flush=True)
            measure(point, cfg, sweep, os.path.join(out, "tb", point.label))
            print(f"rlfarm scale:   {point.env_steps_per_s:,.0f} env steps/s, "
                  f"{point.learner_samples_per_s:,.0f} learner samples/s "
                  f"(set-up {point.setup_s:.1f} s)", file=sys.stderr, flush=True)
            measured.append(point)
    finally:
        if session is not None:
            session.close()
    add_efficiency(measured)
    command = "rlfarm scale " + " ".join([args.config] + [f"--set {o}" for o in args.overrides])
    machine = f"{os.cpu_count()} CPU cores, farm.mode={cfg0.farm.mode}, {sweep.seconds or sweep.env_steps}" \
              f" {'s' if sweep.seconds else 'env steps'} per point after {sweep.warmup_iterations} warm-up updates"
    write_csv(measured, os.path.join(out, "scaling.csv"))
    write_markdown(measured, os.path.join(out, "scaling.md"), command, machine)
    write_plot(measured, os.path.join(out, "scaling.png"), f"{cfg0.name} ({cfg0.env.id})")
    for point in measured:
        write_hparams(point, os.path.join(out, "tb", point.label))
    print(markdown_table(measured))
    print(f"rlfarm scale: wrote {out}/scaling.csv, scaling.md, scaling.png and tb/ "
          f"(tensorboard --logdir {out}/tb)", file=sys.stderr)
    return 0


def _start_ray_once(cfgs: list[Any]):
    """One Ray session for every Ray-mode point, sized for the largest point's CPU demand."""
    ray_cfgs = [cfg for cfg in cfgs if cfg.farm.mode == "ray"]
    if not ray_cfgs:
        return None
    from rlfarm.cluster.placement import cpu_demand
    from rlfarm.cluster.ray_session import start_ray

    demand = max(math.ceil(cpu_demand(cfg.farm)) for cfg in ray_cfgs)
    return start_ray(ray_cfgs[0].farm.address, num_cpus=max(os.cpu_count() or 1, demand))
