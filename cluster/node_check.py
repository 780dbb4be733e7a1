"""The preflight on every node that will hold runners, once Ray is up and before training.

A runner on a node that lacks the user's module (or whose bridge program is missing) used to
fail only when its first fragment was due, and name no node. Here one small Ray task per
candidate node, pinned there (NodeAffinitySchedulingStrategy, hard), does what a runner
would do first: import `env.imports`, make one copy of the env (for `rlfarm/Subprocess-v0`
that starts the program and completes its handshake, so the command must exist), close it.

Candidate nodes are the alive ones that offer every custom resource the runners ask for
(farm.runner_resources.resources, e.g. `cpu_node`) and CPUs where runners need CPUs. The
task asks for no CPU, so busy nodes answer too. The first failure is raised as an
EnvStartError from "node HOST (IP)": the driver prints it in one line, writes summary.json
(exit_reason "node_check_failed") and exits 2 for a missing module or file, 1 for an
exception in the user's code. A node that does not answer within `timeout_s` fails the same way.
"""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from rlfarm.envs.failures import EnvStartError, describe

if TYPE_CHECKING:
    from rlfarm.envs.config import EnvConfig

NODE_CHECK_TIMEOUT_S = 60.0
EXIT_REASON = "node_check_failed"


def check_here(env_id: str, imports: tuple[str, ...], kwargs: dict[str, Any]) -> tuple[str, str, Any]:
    """On the node: (hostname, IP, None) when one env copy was made and closed, else
    (hostname, IP, (kind, message, where, config_error))."""
    import ray

    from rlfarm import envs

    host, ip = socket.gethostname(), ray.util.get_node_ip_address()
    try:
        env = envs.make(env_id, 1, imports=imports, **kwargs)
        env.close()
    except Exception as err:  # noqa: BLE001 - every failure is reported, not raised here
        failure = describe(err, "")
        config_error = failure.config_error or isinstance(err, (ValueError, FileNotFoundError))
        return host, ip, (failure.kind, failure.message, failure.where, config_error)
    return host, ip, None


def runner_nodes(runner_options: dict[str, Any]) -> list[dict[str, Any]]:
    """Alive Ray nodes that offer what one runner asks for (custom resources, CPUs, GPUs)."""
    import ray

    wanted = list(runner_options.get("resources") or {})
    if runner_options.get("num_cpus", 1):
        wanted.append("CPU")
    if runner_options.get("num_gpus", 0):
        wanted.append("GPU")
    return [node for node in ray.nodes() if node.get("Alive")
            and all(node.get("Resources", {}).get(key, 0) > 0 for key in wanted)]


def check_nodes(env_cfg: EnvConfig, runner_options: dict[str, Any], timeout_s: float = NODE_CHECK_TIMEOUT_S
                ) -> list[str]:
    """Run check_here on every runner node; returns ["host(ip)", ...] that passed, raises
    EnvStartError for the first that failed or did not answer."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = runner_nodes(runner_options)
    task = ray.remote(check_here)
    refs = {task.options(num_cpus=0, max_retries=0,
                         scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
            .remote(env_cfg.id, tuple(env_cfg.imports), dict(env_cfg.kwargs or {})): node for node in nodes}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    passed = []
    for ref in ready:
        node = refs[ref]
        try:
            host, ip, failure = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - the task could not run there (runtime_env, a dead node)
            text = str(err).strip().splitlines()
            raise _failed(node, type(err).__name__, text[-1] if text else "", "", True) from None
        if failure is not None:
            raise _failed({"NodeManagerHostname": host, "NodeManagerAddress": ip}, *failure)
        passed.append(f"{host}({ip})")
    if late:
        for ref in late:
            ray.cancel(ref, force=True)
        node = refs[late[0]]
        raise _failed(node, "TimeoutError", f"the node preflight did not answer within {timeout_s:g} s", "", True)
    return passed


def _failed(node: dict[str, Any], kind: str, message: str, where: str, config_error: bool) -> EnvStartError:
    who = f"node {node.get('NodeManagerHostname', '?')} ({node.get('NodeManagerAddress', '?')})"
    err = EnvStartError(who, kind, message, where, config_error)
    err.exit_reason = EXIT_REASON
    return err
