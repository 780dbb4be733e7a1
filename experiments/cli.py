"""The `rlfarm` command line.

One `_add_<command>` per subcommand builds its parser; its handler `_<command>` imports the
module that does the work inside itself, so that `rlfarm --help` and `rlfarm envs` start
without importing torch or ray, and "go to definition" follows every command to its code.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import MutableMapping
from typing import Any

from rlfarm.experiments.errors import ConfigError

EPILOG = """examples:
  rlfarm train experiments/configs/cartpole_ppo.yaml           train on the embedded local Ray
  rlfarm train CONFIG --set farm.mode=serial --set seed=3      one process, no Ray (debugging)
  rlfarm eval runs/cartpole-ppo-<time> --episodes 20           evaluate the last checkpoint
  rlfarm seeds CONFIG --seeds 0-19 --stay-steps 1000000       solve rate and stability over seeds
  rlfarm bench --env rlfarm/CartPole-v1 --num-envs 1024,4096   env-only steps/s per core
  tensorboard --logdir runs                                    watch the runs
"""


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. --set algo.lr=1e-3 --set farm.num_runners=4 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlfarm",
        description="rlfarm: numpy-batched RL environments on CPU Ray actors feeding GPU learners.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_envs(sub)
    _add_bench(sub)
    _add_train(sub)
    _add_seeds(sub)
    _add_eval(sub)
    _add_scale(sub)
    _add_sweep(sub)
    _add_submit(sub)
    _add_jobs(sub)
    _add_slurm(sub)
    _add_config(sub)
    return parser


def _envs_list(args: argparse.Namespace) -> int:
    from rlfarm.experiments.run.list_envs import main

    return main(args)


def _envs_check(args: argparse.Namespace) -> int:
    from rlfarm.experiments.run.envs_check import main

    return main(args)


def _add_envs(sub: Any) -> None:
    p = sub.add_parser("envs", help="list the registered envs; `envs check ID` tests one against the conventions")
    envs_sub = p.add_subparsers(dest="envs_command", metavar="ACTION")
    p.set_defaults(handler=_envs_list)
    check = envs_sub.add_parser("check", help="run the conventions checks on an env, then a one-core speed figure")
    check.add_argument("target", metavar="ID_OR_PATH", nargs="?", default=None,
                       help="a registered id, an entry-point id, or package.module:Class")
    check.add_argument("--num-envs", type=int, default=4, help="copies for the checks (default: %(default)s)")
    check.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                       help="module to import first, like env.imports (repeatable)")
    check.add_argument("--speed-envs", type=int, default=None, metavar="N",
                       help="copies for the speed figure (default: 256, or the largest of the env's "
                            "bench_num_envs where it sets them)")
    check.add_argument("--seconds", type=float, default=1.0, help="speed measurement time (default: %(default)s)")
    check.add_argument("--config", metavar="CONFIG", default=None,
                       help="check the env of this experiment config (its env.id, env.kwargs, env.imports)")
    check.set_defaults(handler=_envs_check)



def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure env steps/s per core, or sampling through the farm")
    p.add_argument("--env", dest="env_ids", action="append", metavar="ID",
                   help="env id to benchmark (repeatable; default: every rlfarm env)")
    p.add_argument("--num-envs", default=None, metavar="N,N,...",
                   help="comma-separated batch sizes (default: 64,1024,4096, or the env's own "
                        "bench_num_envs where it sets one, e.g. CylinderJets: 1,8)")
    p.add_argument("--seconds", type=float, default=None, metavar="S",
                   help="how long to measure each point (default: 1 s for envs, 10 s for --farm)")
    p.add_argument("--farm", metavar="CONFIG", default=None,
                   help="measure sampling through the farm described by CONFIG instead of env-only speed")
    p.add_argument("--vs-rllib", action="store_true",
                   help="with --farm: also run RLlib PPO sampling on the same env, runners and envs")
    p.add_argument("--address", default=None, help="with --farm: join this Ray cluster instead of starting one")
    p.add_argument("--runners", default=None, metavar="N,N,...",
                   help="with --farm: weak scaling; measure each runner count in turn (a fresh farm "
                        "each) and report the medians and their ratio to the first count")
    p.add_argument("--no-ray", action="store_true",
                   help="with --farm: run the runners as plain processes without Ray, keeping their "
                        "fragments: the most the farm's figure can reach on this machine")
    p.add_argument("--repeat", type=int, default=3, metavar="R",
                   help="with --runners: rounds over the runner counts (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON object")
    _add_overrides(p)
    p.set_defaults(handler=_bench)



def _bench(args: argparse.Namespace) -> int:
    from rlfarm.experiments.bench import main

    return main(args)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train from an experiment config; writes runs/<name>-<time>/")
    p.add_argument("config", metavar="CONFIG", nargs="?", default=None,
                   help="YAML experiment config (see experiments/configs/); with --resume, "
                        "defaults to RUN_DIR/config.yaml")
    _add_overrides(p)
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default: $RAY_ADDRESS, else an embedded local Ray)")
    p.add_argument("--run-dir", default=None, metavar="DIR",
                   help="write the run here instead of <log.dir>/<name>-<timestamp>")
    p.add_argument("--force", action="store_true",
                   help="start even when the farm looks too large for this machine's cores or memory")
    p.add_argument("--check-nodes", action="store_true",
                   help="only the preflight: join the cluster, make one env copy on every node that would "
                        "hold runners, and exit (0, or 2 naming the node that failed; docs/envs.md)")
    _add_py_module(p)
    p.set_defaults(handler=_train)



def _train(args: argparse.Namespace) -> int:
    from rlfarm.experiments.run.train import main

    return main(args)


def _add_seeds(sub: Any) -> None:
    p = sub.add_parser("seeds", help="train a config over many seeds in parallel: solve rate, steps to "
                                      "solve, whether each stays solved; writes a CSV and a plot")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-19 or 0,3,5-7 (default: %(default)s)")
    _add_overrides(p)
    p.add_argument("--workers", type=int, default=2, help="runs at a time, one process each (default: %(default)s)")
    p.add_argument("--solve-steps", type=int, default=None, metavar="N",
                   help="env steps within which a seed must reach stop.target_return (default: stop.env_steps)")
    p.add_argument("--stay-steps", type=int, default=None, metavar="N",
                   help="go on past the target to N env steps and check the seed stayed solved there")
    p.add_argument("--stay-return", type=float, default=None, metavar="R",
                   help="stayed solved: last-window mean >= R at --stay-steps (default: 5%% below "
                        "the target, rounded down to a multiple of 10)")
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default: under log.dir)")
    p.set_defaults(handler=_seeds)



def _seeds(args: argparse.Namespace) -> int:
    from rlfarm.experiments.bench.seeds import main

    return main(args)


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate the deterministic policy of a run's last checkpoint")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default: %(default)s)")
    p.add_argument("--gif", metavar="FILE", default=None, help="write copy 0 as a GIF (envs that render)")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (default: %(default)s)")
    p.set_defaults(handler=_eval)



def _eval(args: argparse.Namespace) -> int:
    from rlfarm.experiments.run.evaluate import main

    return main(args)


def _add_scale(sub: Any) -> None:
    p = sub.add_parser("scale", help="run a scaling sweep over runners and envs per runner")
    p.add_argument("config", metavar="CONFIG", help="YAML config with a `sweep` section")
    _add_overrides(p)
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default: under log.dir)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: embedded local Ray)")
    p.set_defaults(handler=_scale)



def _scale(args: argparse.Namespace) -> int:
    from rlfarm.experiments.bench.scale import main

    return main(args)


def _add_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help="hyperparameter sweep on Ray Tune (grid/random, optional ASHA); one run dir per trial",
        description="Train the config once per point of its `sweep` section (parameters, search, "
                    "num_samples, metric, mode, asha, max_concurrent) on Ray Tune. Each trial is an "
                    "rlfarm run under SWEEP_DIR/trials/; sweep.csv, sweep.md (best first) and sweep.png "
                    "land in SWEEP_DIR. Ctrl-C stops; --resume SWEEP_DIR continues. See docs/api.md.")
    p.add_argument("config", metavar="CONFIG", nargs="?", default=None,
                   help="YAML experiment config with a `sweep` section (e.g. experiments/examples/sweep_cartpole.yaml)")
    _add_overrides(p)
    p.add_argument("--out", metavar="SWEEP_DIR", default=None,
                   help="output folder (default: <log.dir>/<name>-sweep-<time>)")
    p.add_argument("--resume", metavar="SWEEP_DIR", default=None, help="continue an interrupted sweep")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, else embedded)")
    p.set_defaults(handler=_sweep)



def _sweep(args: argparse.Namespace) -> int:
    from rlfarm.experiments.launch.sweep import main

    return main(args)


def _add_py_module(p: Any) -> None:
    p.add_argument("--py-module", dest="py_modules", action="append", default=[], metavar="PATH",
                   help="a local package folder or .py file to ship to the cluster's workers "
                        "(repeatable; added to farm.py_modules; docs/envs.md)")


def _add_submit(sub: Any) -> None:
    p = sub.add_parser("submit", help="submit `rlfarm train CONFIG` to a Ray cluster as a Ray Job")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--address", default=None,
                   help="the Ray dashboard address, e.g. http://HEAD:8265 (default: $RAY_ADDRESS)")
    _add_overrides(p)
    p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    p.add_argument("--sweep", action="store_true",
                   help="submit `rlfarm sweep CONFIG` (a config with a `sweep` section) instead of training")
    _add_py_module(p)
    p.set_defaults(handler=_submit)



def _submit(args: argparse.Namespace) -> int:
    from rlfarm.experiments.launch.submit import submit_main

    return submit_main(args)


def _add_jobs(sub: Any) -> None:
    p = sub.add_parser("jobs", help="list jobs (Ray Jobs with --address, else your SLURM jobs), "
                                    "or follow up a Ray Job: status, logs or stop")
    p.add_argument("action", choices=["status", "logs", "stop"], nargs="?", default=None,
                   help="without one: list the jobs with their state")
    p.add_argument("job_id", metavar="ID", nargs="?", default=None)
    p.add_argument("--address", default=None, help="the Ray dashboard address (default: $RAY_ADDRESS)")
    p.set_defaults(handler=_jobs)



def _jobs(args: argparse.Namespace) -> int:
    from rlfarm.experiments.launch.submit import jobs_main

    return jobs_main(args)


def _add_slurm(sub: Any) -> None:
    p = sub.add_parser("slurm", help="write (and with --submit, submit) an sbatch script that trains on SLURM")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--nodes", type=int, default=None, help="nodes in the allocation (the first runs the Ray head)")
    p.add_argument("--gpus-per-node", type=int, default=0)
    p.add_argument("--cpus-per-node", type=int, default=None)
    p.add_argument("--partition", default=None)
    p.add_argument("--cpu-nodes", type=int, default=None,
                   help="a heterogeneous job: CPU nodes for the runners (with --gpu-nodes)")
    p.add_argument("--cpu-partition", default=None, help="the CPU nodes' partition")
    p.add_argument("--gpu-nodes", type=int, default=None,
                   help="a heterogeneous job: GPU nodes for the head and the learners")
    p.add_argument("--gpu-partition", default=None, help="the GPU nodes' partition")
    p.add_argument("--time", default="01:00:00", help="wall time limit (default: %(default)s)")
    p.add_argument("--requeue", action="store_true",
                   help="outlive the time limit: checkpoint before it, requeue the job, resume the run "
                        "dir on the next start, until training ends")
    p.add_argument("--requeue-warning-s", type=int, default=300, metavar="S",
                   help="with --requeue: SLURM's USR1 warning this long before the limit (default: %(default)s)")
    p.add_argument("--account", default=None)
    p.add_argument("--output", metavar="FILE", default=None, help="where to write the script")
    _add_overrides(p)
    p.add_argument("--submit", action="store_true", help="submit the script with sbatch")
    p.add_argument("--wait", action="store_true", help="with --submit: wait for the job and exit with its status")
    p.add_argument("--sweep", action="store_true",
                   help="run `rlfarm sweep CONFIG` (a config with a `sweep` section) on the allocation's Ray cluster")
    p.set_defaults(handler=_slurm)



def _slurm(args: argparse.Namespace) -> int:
    from rlfarm.experiments.launch.slurm import main

    return main(args)


def _add_config(sub: Any) -> None:
    p = sub.add_parser("config", help="`config show [CONFIG]`: a config as it resolves, each field with its meaning")
    config_sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_sub.add_parser("show", help="print CONFIG (default: every default) resolved, with each "
                                              "field's meaning; docs/config.md is the same reference")
    show.add_argument("config", metavar="CONFIG", nargs="?", default=None)
    _add_overrides(show)
    show.set_defaults(handler=_config_show)


def _config_show(args: argparse.Namespace) -> int:
    from rlfarm.experiments.config import apply_overrides, config_from_dict, load_config
    from rlfarm.experiments.config_docs import render_config

    cfg = load_config(args.config, args.overrides) if args.config else \
        config_from_dict(apply_overrides({}, args.overrides))
    print(render_config(cfg), end="")
    return 0


def limit_blas_threads(environ: MutableMapping[str, str] = os.environ) -> None:
    """One thread for numpy's OpenBLAS unless the user chose a count (OPENBLAS_ or OMP_NUM_THREADS).

    In rlfarm numpy's BLAS runs only the runners' small matmuls (a 64-wide MLP over the env
    copies), which gain nothing from more threads. But OpenBLAS's idle threads spin, so
    processes side by side (runners, serial trainings) take each other's cores and all run
    slower (docs/results/performance.md has the measurements). It must be set before numpy loads,
    which no subcommand has done when `main` runs. Ray's workers get OMP_NUM_THREADS from
    Ray already.
    """
    if "OPENBLAS_NUM_THREADS" not in environ and "OMP_NUM_THREADS" not in environ:
        environ["OPENBLAS_NUM_THREADS"] = "1"


def working_folder_on_path(environ: MutableMapping[str, str] = os.environ) -> None:
    """The folder rlfarm is started from is importable, as docs/envs.md says (`env.id:
    "reach_env:Reach"` beside reach_env.py), in every process of the run.

    A console script, unlike `python -m`, does not put it on sys.path. Appended after the
    installed packages here, so a user folder named like a library shadows nothing in this
    process; and added to PYTHONPATH for the processes the run starts (Ray's workers, bare
    runner processes, simulators), which inherit this environment.
    """
    folder = os.getcwd()
    if folder not in sys.path:
        sys.path.append(folder)
    parts = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in parts:
        environ["PYTHONPATH"] = os.pathsep.join([*parts, folder])


def main(argv: list[str] | None = None) -> int:
    limit_blas_threads()
    working_folder_on_path()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as err:
        print(f"rlfarm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlfarm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rlfarm envs | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0
    except Exception as err:  # the user's env module failed at import: its short report
        from rlfarm.envs.failures import EnvStartError, print_report

        if not isinstance(err, EnvStartError):
            raise
        print_report(err, f"rlfarm {args.command}")
        return 2 if err.config_error else 1


if __name__ == "__main__":
    sys.exit(main())
