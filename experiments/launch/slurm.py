"""`rlfarm slurm CONFIG --nodes N [...] [--submit [--wait]]`: train on a SLURM allocation.

Writes an sbatch script (cluster/launch/slurm/rlfarm.sbatch with its directives and settings filled
in) that brings Ray up across the nodes, runs `rlfarm train` against it and brings Ray down.
With --requeue the job outlives its time limit: before the limit the training checkpoints,
the job requeues itself and the next start resumes the same run dir, until training ends
(cluster/launch/slurm/rlfarm.sbatch, point 8). The config is checked first, so a bad one fails here with exit 2 rather than in the queue.
Without --submit the script is also printed to stdout (the notes go to stderr), so it can be
read, or piped to `sbatch`, as it is.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from rlfarm.experiments.errors import ConfigError


def main(args: argparse.Namespace) -> int:
    from rlfarm.cluster.launch import slurm
    from rlfarm.experiments.config import load_config

    het = args.cpu_nodes is not None or args.gpu_nodes is not None
    if het and args.nodes is not None:
        raise ConfigError("--nodes: give either --nodes or --cpu-nodes with --gpu-nodes, not both")
    if het and (args.cpu_nodes is None or args.gpu_nodes is None):
        raise ConfigError("--cpu-nodes: a heterogeneous job needs both --cpu-nodes and --gpu-nodes")
    if not het and args.nodes is None:
        raise ConfigError("--nodes: required (or --cpu-nodes N --gpu-nodes M for a heterogeneous job)")
    if het and args.cpu_nodes < 1:
        raise ConfigError(f"--cpu-nodes: must be >= 1, got {args.cpu_nodes}")
    if args.sweep:
        if args.requeue:
            raise ConfigError("--requeue: not with --sweep (a sweep resumes with `rlfarm sweep --resume`)")
        from rlfarm.experiments.config import config_from_dict
        from rlfarm.experiments.launch.sweep import load_sweep_config

        cfg = config_from_dict(load_sweep_config(args.config, args.overrides)[0])
    else:
        cfg = load_config(args.config, args.overrides)
    workdir = os.getcwd()
    config = _relative_if_inside(args.config, workdir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    script_path = os.path.abspath(args.output or os.path.join(cfg.log.dir, "slurm", f"{cfg.name}-{stamp}.sbatch"))
    try:
        spec = slurm.SlurmJobSpec(
            config=config, nodes=args.gpu_nodes if het else args.nodes, gpus_per_node=args.gpus_per_node,
            cpus_per_node=args.cpus_per_node, partition=(args.gpu_partition or args.partition) if het
            else args.partition, time=args.time, cpu_nodes=args.cpu_nodes or 0,
            cpu_partition=args.cpu_partition, requeue=args.requeue, command="sweep" if args.sweep else "train",
            requeue_warning_s=args.requeue_warning_s,
            run_dir=os.path.abspath(os.path.join(cfg.log.dir, f"{cfg.name}-{stamp}")) if args.requeue else "",
            account=args.account, job_name=f"rlfarm-{cfg.name}"[:64],
            output=os.path.join(os.path.dirname(script_path), f"{cfg.name}-%j.out"),
            overrides=list(args.overrides), workdir=workdir, python=sys.executable)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    os.makedirs(os.path.dirname(script_path), exist_ok=True)
    script = slurm.render_script(spec)
    with open(script_path, "w", encoding="utf-8") as stream:
        stream.write(script)
    os.chmod(script_path, 0o755)
    if not args.submit:
        print(f"rlfarm slurm: wrote {script_path}; submit it with `sbatch {script_path}`", file=sys.stderr)
        print(script, end="")
        return 0
    print(f"rlfarm slurm: wrote {script_path}")

    reason = slurm.slurm_unavailable_reason()
    if reason:
        print(f"rlfarm slurm: cannot submit: {reason}", file=sys.stderr)
        return 1
    try:
        job_id = slurm.submit(script_path)
    except RuntimeError as err:
        print(f"rlfarm slurm: {err}", file=sys.stderr)
        return 1
    log_path = spec.output.replace("%j", job_id)
    print(f"rlfarm slurm: submitted job {job_id}; log {log_path}"
          + (f"; run dir {spec.run_dir} (requeued until training ends)" if spec.requeue else ""))
    print(job_id)
    if not args.wait:
        return 0
    state, exit_code = slurm.wait_job(job_id)
    print(f"rlfarm slurm: job {job_id} {state} (exit code {exit_code}); log {log_path}",
          file=sys.stderr if state != "COMPLETED" else sys.stdout)
    return 0 if state == "COMPLETED" else 1


def _relative_if_inside(path: str, workdir: str) -> str:
    """The config path as the job sees it from `workdir`: relative when it lies inside."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, workdir)
    return absolute if relative.startswith("..") else relative
