"""Messages a user meets without a cluster at hand name what the user can do, never the
project's own CI scripts (.ci/...)."""
from __future__ import annotations

import pytest

from rlfarm.experiments.cli import main


@pytest.fixture
def no_cluster(monkeypatch, tmp_path):
    """No sbatch on PATH and no Ray address: a laptop."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_jobs_without_a_cluster_says_what_to_give(no_cluster, capsys):
    assert main(["jobs"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and ".ci/" not in err
    assert "--address" in err and "sbatch" in err and "login node" in err


def test_slurm_submit_without_slurm_says_where_to_run(no_cluster, capsys, tmp_path, write_config):
    config = write_config()
    assert main(["slurm", str(config), "--nodes", "1", "--output", str(tmp_path / "job.sbatch"), "--submit"]) == 1
    err = capsys.readouterr().err.strip()
    assert ".ci/" not in err and "login node" in err and "sbatch" in err
