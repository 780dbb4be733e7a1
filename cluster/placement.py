"""Turn FarmConfig resource dicts into Ray actor options, checked against the cluster.

`farm.runner_resources` / `farm.learner_resources` take the keys of `actor.options()`
that decide where an actor lands:

    num_cpus, num_gpus, memory     - Ray's built-in resources
    resources: {name: amount}      - custom resources a node was started with
                                     (`ray start --resources='{"cpu_node": 64}'`)
    label_selector: {label: value} - node labels (`ray start --labels=...`)
    accelerator_type               - e.g. "H100"

A requirement that no node in the cluster can meet would leave the actor pending
forever, so we check it up front and fail with a message naming the field. The one
exception is GPUs: a learner asking for GPUs on a cluster without any runs on CPU with
a warning (a laptop run of a GPU config).
"""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

ALLOWED_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "label_selector", "accelerator_type")


def actor_options(resources: dict[str, Any] | None, field: str) -> dict[str, Any]:
    """Validated `actor.options(**...)` for one actor; `field` names the config field."""
    resources = dict(resources or {})
    unknown = sorted(set(resources) - set(ALLOWED_KEYS))
    if unknown:
        raise ValueError(f"{field}: unknown key(s) {unknown}; allowed: {list(ALLOWED_KEYS)}")
    for key in ("num_cpus", "num_gpus", "memory"):
        if key in resources and (not isinstance(resources[key], (int, float)) or resources[key] < 0):
            raise ValueError(f"{field}.{key}: must be a number >= 0, got {resources[key]!r}")
    for key in ("resources", "label_selector"):
        if key in resources and not isinstance(resources[key], dict):
            raise ValueError(f"{field}.{key}: must be a mapping, got {resources[key]!r}")
    options = {key: value for key, value in resources.items() if value is not None}
    options.setdefault("num_cpus", 1)
    return options


def check_fits(options: dict[str, Any], field: str, count: int = 1) -> dict[str, Any]:
    """Check that the live cluster has the resources at all; return possibly adjusted options.

    Only existence is checked (not that `count` actors fit at once): actors beyond the
    free capacity wait for it, as Ray intends on a busy cluster.
    """
    import ray

    totals = ray.cluster_resources()
    options = dict(options)
    if options.get("num_gpus", 0) > 0 and totals.get("GPU", 0) <= 0:
        logger.warning("%s.num_gpus=%s but the Ray cluster has no GPUs: running on CPU",
                       field, options["num_gpus"])
        options["num_gpus"] = 0
    for name, amount in (options.get("resources") or {}).items():
        if totals.get(name, 0) < amount:
            have = sorted(k for k in totals if not k.startswith("node:") and k != "object_store_memory")
            raise ValueError(f"{field}.resources.{name}: no node in the Ray cluster has {amount} of "
                             f"'{name}' (cluster resources: {have})")
    if options.get("num_cpus", 0) > totals.get("CPU", 0):
        raise ValueError(f"{field}.num_cpus={options['num_cpus']}: the Ray cluster has only "
                         f"{totals.get('CPU', 0):g} CPUs")
    return options


def cpu_demand(farm_cfg) -> float:
    """Logical CPUs that all runners and learners of a farm ask for together."""
    runner = actor_options(farm_cfg.runner_resources, "farm.runner_resources")["num_cpus"]
    learner = actor_options(farm_cfg.learner_resources, "farm.learner_resources")["num_cpus"]
    return farm_cfg.num_runners * runner + farm_cfg.num_learners * learner


def check_total_cpus(farm_cfg) -> None:
    """Fail early when all actors together need more CPUs than the cluster has: Ray would
    otherwise leave the last ones pending forever and the farm would wait on them."""
    import ray

    demand = cpu_demand(farm_cfg)
    have = ray.cluster_resources().get("CPU", 0.0)
    if demand > have + 1e-9:
        raise ValueError(
            f"farm: {farm_cfg.num_runners} runners and {farm_cfg.num_learners} learner(s) need {demand:g} CPUs "
            f"(farm.runner_resources.num_cpus x num_runners + farm.learner_resources.num_cpus x "
            f"num_learners) but the Ray cluster has {have:g}; lower num_runners or the num_cpus "
            f"per actor (fractions such as 0.5 are allowed)")


def node_placement() -> dict[str, Any]:
    """Where the calling actor runs: node id, node ip, hostname, pid, and the GPUs Ray assigned it."""
    import os
    import socket

    import ray

    context = ray.get_runtime_context()
    return {"node_id": context.get_node_id(), "ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(), "pid": os.getpid(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}


def describe_placement(placement: dict[str, Any]) -> str:
    """One line: where every runner and learner runs, e.g.
    `runners 0@cpu1(198.18.0.2) 1@cpu2(198.18.0.3); learners 0@gpu1(198.18.0.1)`."""
    parts = []
    for role in ("runners", "learners"):
        where = " ".join(f"{index}@{p.get('hostname', '?')}({p.get('ip', '?')})"
                         for index, p in enumerate(placement.get(role, [])))
        parts.append(f"{role} {where or '-'}")
    return "; ".join(parts)
