"""Fixtures for the Ray farm tests: one Ray session per test module."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HOSTS_SH = REPO / ".ci" / "hosts.sh"
TEST_HOSTS = {"gpu1": "198.18.0.1", "cpu1": "198.18.0.2", "cpu2": "198.18.0.3"}
"""The hosts of .ci/hosts.sh (docs/cluster-testing.md) and their addresses."""


def hosts_unavailable_reason() -> str | None:
    """None when the hosts of .ci/hosts.sh are up, else why not."""
    if os.geteuid() != 0:
        return "the test cluster needs root (network namespaces)"
    missing = [h for h in TEST_HOSTS if not (Path("/run/netns") / h).exists()
               or not Path(f"/run/rlfarm-hosts/{h}.uts").exists()]
    if missing:
        return f"hosts {missing} are not up (bash .ci/hosts.sh up)"
    return None


def ci_slurm_conf() -> str:
    """The SLURM_CONF of the test cluster's SLURM, as `.ci/slurm.sh env` prints it."""
    out = subprocess.run(["bash", str(REPO / ".ci" / "slurm.sh"), "env"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return out.strip().split("SLURM_CONF=", 1)[1]


def slurm_unavailable_reason() -> str | None:
    """None when the test cluster's own SLURM answers, else why not.

    Only the SLURM of .ci/slurm.sh counts: SLURM_CONF must name its config. Any other
    `sbatch` on PATH (a site scheduler on an HPC login node, a SLURM installed on the
    machine) is never used, so the suite cannot submit test jobs to someone else's cluster.
    """
    reason = hosts_unavailable_reason()
    if reason:
        return reason
    expected = ci_slurm_conf()
    conf = os.environ.get("SLURM_CONF", "")
    if not conf:
        return "SLURM_CONF is not set; the tests use only the test cluster's SLURM (eval \"$(bash .ci/slurm.sh env)\")"
    if os.path.realpath(conf) != os.path.realpath(expected):
        return f"SLURM_CONF={conf} is not the test cluster's ({expected}); other SLURMs are never used"
    if not Path(conf).is_file() or "ClusterName=rlfarm-ci" not in Path(conf).read_text():
        return f"{conf} is not written yet (bash .ci/slurm.sh start)"
    from rlfarm.cluster.launch import slurm

    return slurm.slurm_unavailable_reason()


def skip_or_fail(reason: str | None, require_var: str, what: str) -> None:
    """Skip with the reason, or fail where CI requires the test cluster (`require_var`=1)."""
    if reason:
        if os.environ.get(require_var) == "1":
            pytest.fail(f"{require_var}=1 but {what} is not usable: {reason}")
        pytest.skip(f"{what} is not usable here: {reason}")


@pytest.fixture(scope="module")
def ray_local():
    """An embedded local Ray for the whole module, shut down after its last test.

    4 logical CPUs on the 2-core CI machine, so that 2 runners and 1-2 learners (1 CPU
    each) are all scheduled at once, as they are on a laptop-sized embedded run.
    """
    import ray

    from rlfarm.cluster.ray_session import start_ray

    if ray.is_initialized():  # a previous module's session leaked: start clean
        ray.shutdown()
    session = start_ray(num_cpus=4)
    yield session
    session.close()


@pytest.fixture
def cartpole():
    """Configs for small CartPole farms: `cartpole(algo="ppo", envs=64, **farm_fields)`
    returns (env_cfg, policy_cfg, algo_cfg, farm_cfg) with the README demo's hyperparameters."""
    from rlfarm import agents, envs
    from rlfarm.cluster import FarmConfig

    def make(algo: str = "ppo", envs_per_runner: int = 64, env_id: str = "rlfarm/CartPole-v1",
             env_kwargs: dict | None = None, algo_fields: dict | None = None, **farm_fields):
        env_cfg = envs.EnvConfig(id=env_id, envs_per_runner=envs_per_runner, kwargs=dict(env_kwargs or {}))
        algo_fields = {"lr": 2.5e-3, "epochs": 4, "minibatches": 4, "device": "cpu", **(algo_fields or {})}
        algo_cfg = agents.AlgoConfig(name=algo, **algo_fields)
        farm_fields = {"mode": "ray", "num_runners": 2, "fragment_length": 32, **farm_fields}
        return env_cfg, agents.PolicyConfig(hidden_sizes=[64, 64]), algo_cfg, FarmConfig(**farm_fields)

    return make


@pytest.fixture(scope="module")
def ray_with_faulty_envs():
    """Ray whose workers can import tests/cluster/faulty_env.py (workers inherit PYTHONPATH)."""
    import ray

    from rlfarm.cluster.ray_session import start_ray

    if ray.is_initialized():
        ray.shutdown()
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), previous) if p)
    session = start_ray(num_cpus=4)
    yield session
    session.close()
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


def write_tiny_ray_config(path: Path, name: str, log_dir: Path, **sections: dict[str, Any]) -> Path:
    """A tiny Ray-mode CartPole config for the end-to-end tests (8 envs, 16-step fragments,
    1024 env steps); `sections` update its sections one level deep ({"farm": {...}, ...})."""
    raw: dict[str, Any] = {
        "name": name, "seed": 0, "env": {"id": "rlfarm/CartPole-v1", "envs_per_runner": 8},
        "algo": {"epochs": 1, "minibatches": 1, "device": "cpu"},
        "farm": {"mode": "ray", "num_runners": 1, "fragment_length": 16},
        "stop": {"env_steps": 1024},
        "log": {"dir": str(log_dir), "report_interval_s": 0.5, "checkpoint_interval_s": 0},
    }
    for section, values in sections.items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
