"""`rlfarm bench --farm CONFIG`: env steps/s sampled through the Ray farm (policy inference
included, fragments delivered to the learner process), optionally against RLlib.

    rlfarm bench --farm experiments/configs/bench_farm.yaml --seconds 10 --vs-rllib
    rlfarm bench --farm experiments/configs/bench_farm.yaml --seconds 8 --runners 1,2 --repeat 5
    rlfarm bench --farm experiments/configs/bench_farm.yaml --seconds 8 --runners 1,2 --no-ray

The runners, envs per runner and fragment length come from CONFIG (and --set overrides);
the learner actor receives every fragment and discards it, so the figure is the farm's
sampling and delivery speed, not training speed. `--runners` measures weak scaling (envs per
runner fixed, runners varied): the counts take turns, round after round, so a machine whose
speed drifts (a shared VM) drifts under all of them alike. `--no-ray` runs the same runners as
plain processes that keep their fragments (bare_sampling.py): the most the farm's
figure can reach on this machine, and how its cores scale before Ray adds anything.

Where the farm's Ray is embedded, each figure comes with its CPU accounting: the cores the
farm used, the runners' share, and per fragment the runners' sampling CPU and Ray's (all the
rest); see farm_sampling.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import TYPE_CHECKING, Any

from rlfarm.experiments.errors import ConfigError, positive_ints

if TYPE_CHECKING:
    from rlfarm.experiments.config import ExperimentConfig


def main(args: argparse.Namespace) -> int:
    from rlfarm.experiments.config import load_config

    cfg = load_config(args.farm, args.overrides)
    cfg.farm.mode = "ray"
    if args.address:
        cfg.farm.address = args.address
    seconds = args.seconds if args.seconds is not None else 10.0
    if args.no_ray and (args.vs_rllib or args.address):
        raise ConfigError(f"--no-ray: not with {'--vs-rllib' if args.vs_rllib else '--address'}; "
                          "--no-ray runs the runners on this machine without Ray")
    if args.runners:
        return _weak_scaling(args, cfg, seconds)
    setup = {"config": args.farm, "env": cfg.env.id, "num_runners": cfg.farm.num_runners,
             "envs_per_runner": cfg.env.envs_per_runner, "fragment_length": cfg.farm.fragment_length,
             "seconds": seconds}
    if args.no_ray:
        return _bare(args, cfg, setup)
    setup["max_inflight"] = cfg.farm.max_inflight
    if not args.json:
        print(f"rlfarm bench --farm: {cfg.farm.num_runners} runners x {cfg.env.envs_per_runner} "
              f"{cfg.env.id} envs, fragments of {cfg.farm.fragment_length} steps, {seconds:g} s ...",
              file=sys.stderr, flush=True)

    from rlfarm.experiments.bench.farm_sampling import farm_sampling

    report: dict[str, Any] = {**setup, "rlfarm": farm_sampling(cfg.env, cfg.model, cfg.algo, cfg.farm,
                                                               cfg.seed, seconds)}
    if args.vs_rllib:
        from rlfarm.cluster.rllib_sampling import rllib_sampling

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


def _bare(args: argparse.Namespace, cfg: ExperimentConfig, setup: dict[str, Any]) -> int:
    report = {**setup, "no_ray": _measure(args, cfg, setup["seconds"])}
    if args.json:
        print(json.dumps(report))
    else:
        bare = report["no_ray"]
        each = ", ".join(f"{figure / 1e6:.3f}M" for figure in bare["per_runner_env_steps_per_s"])
        print(f"no Ray  {bare['env_steps_per_s'] / 1e6:8.3f} M env steps/s  ({_runners(cfg.farm.num_runners)} "
              f"x {cfg.env.envs_per_runner} {cfg.env.id} envs as plain processes, fragments kept; "
              f"per runner {each}; env step {bare['env_step_ms']:.2f} ms, inference "
              f"{bare['inference_ms']:.2f} ms per batched step; {_cpu_note(bare)})")
    return 0


def _measure(args: argparse.Namespace, cfg: ExperimentConfig, seconds: float) -> dict[str, Any]:
    """One measurement at cfg.farm.num_runners: bare processes with --no-ray, else the farm."""
    if args.no_ray:
        from rlfarm.experiments.bench.bare_sampling import bare_sampling

        return bare_sampling(cfg.env, cfg.model, fragment_length=cfg.farm.fragment_length,
                             num_runners=cfg.farm.num_runners, seed=cfg.seed, seconds=seconds)
    from rlfarm.experiments.bench.farm_sampling import farm_sampling

    return farm_sampling(cfg.env, cfg.model, cfg.algo, cfg.farm, cfg.seed, seconds)


def _weak_scaling(args: argparse.Namespace, cfg: ExperimentConfig, seconds: float) -> int:
    counts = positive_ints("--runners", args.runners, "1,2")
    if args.repeat < 1:
        raise ConfigError(f"--repeat: expected a number of rounds >= 1; got {args.repeat}")
    if args.vs_rllib:
        raise ConfigError("--vs-rllib: not with --runners; compare with RLlib at one runner count")
    if not args.json:  # the batch grows with the runners here, on purpose: say so (docs/scaling.md)
        print(f"rlfarm bench: weak scaling: every runner keeps {cfg.env.envs_per_runner} envs, so the env steps "
              "per update grow with the runner count (a sampling measurement; training holds its batch "
              "with farm.runner_slots)", file=sys.stderr, flush=True)
    rounds: list[dict[int, float]] = []
    ray_cpu: dict[int, list[float]] = {count: [] for count in counts}  # Ray's CPU ms per fragment
    for round_index in range(args.repeat):
        rounds.append({})
        for count in counts:
            cfg.farm.num_runners = count
            measured = _measure(args, cfg, seconds)
            figure = measured["env_steps_per_s"]
            rounds[-1][count] = figure
            if "ray_cpu_ms_per_fragment" in measured:
                ray_cpu[count].append(measured["ray_cpu_ms_per_fragment"])
            if not args.json:
                print(f"round {round_index + 1}/{args.repeat}: {_runners(count)} x {cfg.env.envs_per_runner} "
                      f"envs  {figure / 1e6:.3f} M env steps/s{_in_parentheses(_cpu_note(measured))}",
                      file=sys.stderr, flush=True)
    report = weak_scaling_report(rounds, counts)
    for count, figures in ray_cpu.items():
        if figures:
            report["runners"][str(count)]["ray_cpu_ms_per_fragment"] = figures
    report.update(config=args.farm, env=cfg.env.id, envs_per_runner=cfg.env.envs_per_runner,
                  fragment_length=cfg.farm.fragment_length, seconds=seconds, no_ray=bool(args.no_ray))
    if args.json:
        print(json.dumps(report))
    else:
        for count in counts:
            row = report["runners"][str(count)]
            print(f"{_runners(count):>10}  median {row['median'] / 1e6:.3f} M env steps/s  "
                  f"(range {row['min'] / 1e6:.3f}-{row['max'] / 1e6:.3f}; x{row['speedup']:.2f} the "
                  f"{counts[0]}-runner median; per round x{row['round_speedup_median']:.2f})")
    return 0


def _runners(count: int) -> str:
    return f"{count} runner" + ("s" if count != 1 else "")


def _cpu_note(measured: dict[str, Any]) -> str:
    """The CPU accounting of one measurement in words ("" where it was not measured): the
    farm's cores and CPU per fragment (farm_sampling.py), or --no-ray's sampling CPU."""
    if "ray_cpu_ms_per_fragment" in measured:
        return (f"{measured['cpu_cores']:.2f} cores, of which runners {measured['runner_cores']:.2f}; "
                f"CPU per fragment: sampling {measured['sampling_cpu_ms_per_fragment']:.1f} ms, "
                f"Ray {measured['ray_cpu_ms_per_fragment']:.1f} ms")
    if "sampling_cpu_ms_per_fragment" in measured:
        return f"sampling {measured['sampling_cpu_ms_per_fragment']:.1f} ms CPU per fragment"
    return ""


def _in_parentheses(note: str) -> str:
    return f"  ({note})" if note else ""


def weak_scaling_report(rounds: list[dict[int, float]], counts: list[int]) -> dict[str, Any]:
    """Per runner count: median, range, the ratio of its median to the first count's median,
    and the median of the same ratio taken within each round (robust to drift between rounds)."""
    base = statistics.median(r[counts[0]] for r in rounds)
    runners = {}
    for count in counts:
        figures = [r[count] for r in rounds]
        runners[str(count)] = {
            "median": statistics.median(figures), "min": min(figures), "max": max(figures),
            "speedup": statistics.median(figures) / base,
            "round_speedup_median": statistics.median(r[count] / r[counts[0]] for r in rounds),
            "env_steps_per_s": figures}
    return {"rounds": len(rounds), "runners": runners}


def _print_table(report: dict[str, Any]) -> None:
    ours = report["rlfarm"]
    cpu = _cpu_note(ours)
    print(f"rlfarm  {ours['env_steps_per_s'] / 1e6:8.3f} M env steps/s  "
          f"({ours['env_steps']:,} steps in {ours['seconds']:.1f} s; env step {ours['env_step_ms']:.2f} ms, "
          f"inference {ours['inference_ms']:.2f} ms per batched step; fragment {ours['fragment_mb']:.1f} MB; "
          f"object store max {ours['object_store_max_mb']:.1f} MB; "
          f"{ours['fragments_per_delivery']:.1f} fragments per learner call"
          f"{'; ' + cpu if cpu else ''})")
    if "rllib" in report:
        print(f"rllib   {report['rllib']['env_steps_per_s'] / 1e6:8.3f} M env steps/s  "
              f"({report['rllib']['env_steps']:,} steps in {report['rllib']['seconds']:.1f} s)")
        print(f"ratio   {report['ratio']:8.1f} x")
