"""Refuse what the machine cannot hold (issue 19, case 6): exit 2 with the numbers and the
limit before anything starts; --force skips the check."""
from __future__ import annotations

import os

from rlfarm.experiments.run import capacity


def test_more_runners_than_the_cores_can_hold_are_refused(write_config, runs_dir, train, capsys):
    assert train(write_config({"farm": {"mode": "ray", "num_runners": 1000}})) == 2
    err = capsys.readouterr().err
    cores = len(os.sched_getaffinity(0))
    assert f"farm.num_runners=1000 needs 1000 CPUs; this machine has {cores}" in err and "Traceback" not in err
    assert not runs_dir.exists()


def test_envs_that_do_not_fit_in_memory_are_refused(write_config, runs_dir, train, capsys):
    assert train(write_config({"env": {"envs_per_runner": 100_000_000}, "farm": {"fragment_length": 16}})) == 2
    err = capsys.readouterr().err
    assert "env.envs_per_runner=100000000: about " in err and " GB per runner" in err and " available" in err
    assert not runs_dir.exists()


def test_the_estimate_grows_with_copies_steps_and_runners(write_config):
    from rlfarm.experiments.config import load_config

    small = load_config(write_config({"farm": {"mode": "ray"}}))
    per_runner, in_flight = capacity.memory_estimate(small)
    bigger = load_config(write_config({"farm": {"mode": "ray", "num_runners": 4, "fragment_length": 32}}))
    per_runner_2, in_flight_2 = capacity.memory_estimate(bigger)
    # CartPole: 4 float32 obs; one fragment of 16 steps x 8 copies is about 8 x 17 x 16 bytes + per-step fields
    assert 8 * 17 * 16 < per_runner < 10 * 8 * 17 * 16
    assert per_runner_2 > 1.9 * per_runner and in_flight_2 > 3.9 * in_flight > 0


def test_force_starts_what_the_check_refuses(write_config, runs_dir, train, capsys, monkeypatch):
    # The machine is "smaller" than it is: the one measurement the check reads is replaced.
    monkeypatch.setattr(capacity, "available_memory_bytes", lambda: 1024)
    config = write_config({"stop": {"env_steps": 256}})
    assert train(config) == 2 and "; 0 MB available (--force starts it anyway)" in capsys.readouterr().err
    assert train(config, extra_args=("--force",)) == 0
