"""SAC and DQN through `rlfarm train`: the exact update-to-data ratio in serial mode, resume
with and without the replay buffer, the displayed config, eval, the capacity estimate.
Bookkeeping only, at a few hundred env steps; learning is tests/experiments/test_offpolicy_learning.py."""
from __future__ import annotations

import json
import math

import pytest

from rlfarm.experiments.report.monitor import read_scalars

from .conftest import CONFIG_DIR, only_run_dir, read_summary

SHORT_SAC = ("farm.mode=serial", "log.progress=none", "log.report_interval_s=0.01", "model.hidden_sizes=[16,16]",
             "algo.batch_size=32", "algo.learning_starts=64", "log.pictures=false")


def test_serial_sac_runs_the_exact_ratio_and_resumes_with_its_counters(runs_dir, train, capsys):
    common = (f"log.dir={runs_dir}", *SHORT_SAC, "algo.updates_per_step=0.5")
    assert train(CONFIG_DIR / "pendulum_sac.yaml", *common, "stop.env_steps=240") == 0
    run_dir = only_run_dir(runs_dir)
    first = read_summary(run_dir)
    assert first["env_steps"] == 240 and first["exit_reason"] == "env_steps"
    before = read_scalars(str(run_dir), ["learner/gradient_steps", "learner/alpha"])
    ratio = before["learner/gradient_steps"]
    assert ratio[-1][1] == 0.5 * (240 - 64)  # every env step past learning_starts earns half a step
    alpha_before = before["learner/alpha"][-1][1]
    # 88 Adam steps on log alpha (lr 1e-3, entropy far above its target) move it by about -0.09
    assert math.log(alpha_before) < -0.05
    display = (run_dir / "config.yaml").read_text()
    assert "updates_per_step" in display
    capsys.readouterr()

    assert train(None, "stop.env_steps=400", extra_args=("--resume", str(run_dir))) == 0
    err = capsys.readouterr().err
    assert "holds no replay buffer" in err and "learning_starts=64" in err
    second = read_summary(run_dir)
    assert second["env_steps"] == 400
    curve = read_scalars(str(run_dir), ["learner/gradient_steps"])["learner/gradient_steps"]
    steps = [step for step, _ in curve]
    assert steps == sorted(steps) and steps[-1] == 400
    # the counter continues from the checkpoint (88), and the empty buffer refills 64 first
    assert curve[-1][1] == 88 + 0.5 * (400 - 240 - 64)
    assert all(value == 88 for step, value in curve if 240 <= step <= 240 + 64)
    # TensorBoard steps continue: the first run's points survive (a step counter restarted at 0
    # would make TensorBoard purge them) and the resumed points follow them
    assert [point for point in curve if point[0] < 240] == [point for point in ratio if point[0] < 240]
    assert any(step > 240 for step in steps)
    # alpha continues from the checkpoint, not from algo.init_alpha (1.0): its first resumed
    # point is a few Adam steps (each about lr = 1e-3 in log alpha) from the last one saved
    alpha_after = [value for step, value in read_scalars(str(run_dir), ["learner/alpha"])["learner/alpha"]
                   if step > 240]
    assert alpha_after and abs(math.log(alpha_after[0]) - math.log(alpha_before)) < 0.02, (alpha_before, alpha_after)


def test_checkpoint_replay_resumes_without_refilling(runs_dir, train, capsys):
    common = (f"log.dir={runs_dir}", *SHORT_SAC, "log.checkpoint_replay=true")
    assert train(CONFIG_DIR / "pendulum_sac.yaml", *common, "stop.env_steps=160") == 0
    run_dir = only_run_dir(runs_dir)
    capsys.readouterr()
    assert train(None, "stop.env_steps=240", extra_args=("--resume", str(run_dir))) == 0
    assert "holds no replay buffer" not in capsys.readouterr().err
    curve = read_scalars(str(run_dir), ["learner/gradient_steps"])["learner/gradient_steps"]
    assert curve[-1][1] == 240 - 64  # one gradient step per env step past learning_starts, no refill


def test_dqn_trains_and_evaluates_greedily(runs_dir, train, capsys):
    assert train(CONFIG_DIR / "cartpole_dqn.yaml", f"log.dir={runs_dir}", "log.progress=none",
                 "model.hidden_sizes=[16,16]", "stop.env_steps=768", "algo.learning_starts=256",
                 "algo.n_step=3", "algo.dueling=true", "log.pictures=false") == 0
    run_dir = only_run_dir(runs_dir)
    eps = read_scalars(str(run_dir), ["learner/epsilon"])["learner/epsilon"]
    assert eps[-1][1] < 1.0  # the schedule moved
    from rlfarm.experiments.cli import main as cli_main

    capsys.readouterr()
    assert cli_main(["eval", str(run_dir), "--episodes", "4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 4 and result["return_mean"] > 0


def test_offpolicy_config_errors_name_the_field(write_config, train, capsys):
    cases = {("algo.name=dqn", "algo.tau=0"): "algo.tau", ("algo.name=sac", "farm.num_learners=2"): "farm.num_learners",
             ("algo.name=sac", "model.activation=gelu"): "model.trunk"}
    for overrides, field in cases.items():
        assert train(write_config(), *overrides) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and field in err, err


def test_capacity_counts_the_replay_buffer(write_config):
    from rlfarm.experiments.config import load_config
    from rlfarm.experiments.errors import ConfigError
    from rlfarm.experiments.run.capacity import check_capacity, replay_estimate

    cfg = load_config(CONFIG_DIR / "pendulum_sac.yaml")
    import numpy as np
    from gymnasium import spaces

    obs, act = spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-2, 2, (1,), np.float32)
    assert replay_estimate(cfg, obs, act) == cfg.algo.replay_size * (2 * 4 * 3 + 4 + 8)
    cfg.algo.replay_size = 10**12  # terabytes
    with pytest.raises(ConfigError, match="replay buffer"):
        check_capacity(cfg, obs, act)


@pytest.mark.slow
def test_ray_sac_keeps_the_ratio_to_consumed_steps_and_drops_nothing(runs_dir, train):
    """Ray mode, 2 runners: every fragment is learned from however old (none dropped), and the
    gradient steps are updates_per_step x the env steps consumed past learning_starts."""
    assert train(CONFIG_DIR / "pendulum_sac.yaml", f"log.dir={runs_dir}", *SHORT_SAC[1:], "farm.mode=ray",
                 "farm.num_runners=2", "farm.fragment_length=4", "stop.env_steps=160") == 0
    run_dir = only_run_dir(runs_dir)
    summary = read_summary(run_dir)
    assert summary["env_steps"] == 160 and summary["dropped_fragments"] == 0, summary
    curve = read_scalars(str(run_dir), ["learner/gradient_steps"])["learner/gradient_steps"]
    assert curve[-1] == (160, 160 - 64)
