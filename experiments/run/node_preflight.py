"""`rlfarm train --check-nodes`: the node preflight alone (the sbatch template's own step).

Joins the cluster as a training would (with the user's code shipped), runs
cluster/node_check.py on every node that would hold runners, and leaves. A failing node ends
it like a failed runner start: one line naming the node (host and IP), the module or file and
the error, a run dir with summary.json (exit_reason "node_check_failed"), exit 2.
"""
from __future__ import annotations

from rlfarm.experiments.report.console import say
from rlfarm.experiments.run.train import Training


def check_nodes_only(training: Training) -> int:
    """The preflight alone; 0 when every node passed, else start_failed's exit and summary."""
    try:
        return _check_nodes(training)
    finally:
        if training.lock is not None:  # a resumed run's dir: free for the training that follows
            training.lock.release()


def _check_nodes(training: Training) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from rlfarm.cluster.node_check import check_nodes
    from rlfarm.cluster.placement import actor_options
    from rlfarm.cluster.ray_session import start_ray
    from rlfarm.envs.failures import EnvStartError

    if training.start_error is not None:
        return training.start_failed(training.start_error)
    if training.cfg.farm.mode != "ray":
        say("rlfarm train: --check-nodes: farm.mode is serial; the driver's env check passed")
        return 0
    staging = tempfile.mkdtemp(prefix="rlfarm-ship-")
    try:
        runtime_env = training.shipment.runtime_env(Path(staging)) if training.shipment is not None else None
        session = start_ray(training.cfg.farm.address, runtime_env=runtime_env)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        options = actor_options(training.cfg.farm.runner_resources, "farm.runner_resources")
        passed = check_nodes(training.cfg.env, options)
    except EnvStartError as err:
        return training.start_failed(err)
    finally:
        session.close()
    say(f"rlfarm train: node preflight passed on {', '.join(passed)}")
    return 0
