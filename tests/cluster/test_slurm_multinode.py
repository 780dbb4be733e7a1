"""Multi-node SLURM jobs on the test cluster (`bash .ci/slurm.sh start`: gpu1 in partition
`gpu`, cpu1 and cpu2 in `cpu`, all three in `all`), each bringing Ray up across its nodes.

Skipped with the reason when SLURM is not running here; with RLFARM_REQUIRE_SLURM=1 (CI) a
missing SLURM fails instead.
"""
from __future__ import annotations

import pytest

from rlfarm.cluster import slurm
from test_slurm_e2e import check_job_summary, job_id_of, rlfarm_slurm, slurm_up, write_config  # noqa: F401

pytestmark = pytest.mark.slow


def hosts_of(summary: dict, role: str) -> set[str]:
    return {placement["hostname"] for placement in summary["placement"][role]}


def test_homogeneous_three_node_job_spreads_runners(tmp_path):
    config, log_dir = write_config(tmp_path, "three")
    out = rlfarm_slurm(config, tmp_path / "three.sbatch", "--partition", "all", "--wait",
                       shape=("--nodes", "3"))
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = job_id_of(out)
    log_text, summary = check_job_summary(job_id, log_dir, tmp_path / f"three-{job_id}.out")
    assert "3 Ray node(s) up" in log_text
    assert hosts_of(summary, "runners") | hosts_of(summary, "learners") <= {"gpu1", "cpu1", "cpu2"}


def test_heterogeneous_job_runners_on_cpu_nodes_learner_on_gpu1(tmp_path):
    config, log_dir = write_config(tmp_path, "het")
    out = rlfarm_slurm(config, tmp_path / "het.sbatch", "--gpus-per-node", "1", "--wait",
                       shape=("--cpu-nodes", "2", "--cpu-partition", "cpu",
                              "--gpu-nodes", "1", "--gpu-partition", "gpu"))
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = job_id_of(out)
    _, summary = check_job_summary(job_id, log_dir, tmp_path / f"het-{job_id}.out")
    assert hosts_of(summary, "runners") == {"cpu1", "cpu2"}, summary["placement"]
    assert hosts_of(summary, "learners") == {"gpu1"}
    assert slurm.job_state(job_id)[0] == "COMPLETED"
