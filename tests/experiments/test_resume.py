"""Resume: train, stop, resume. The step counter and curves continue, the normalizer is the
saved one, and the return does not collapse."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rlfarm.experiments.report.monitor import read_scalars

from .conftest import CONFIG_DIR, only_run_dir, read_summary

FIRST_STEPS, SECOND_STEPS = 20 * 4096, 38 * 4096  # whole demo batches; 2304 new steps per copy: >= 2 full episodes


@pytest.mark.slow
def test_resume_continues_counters_curves_normalizer_and_return(runs_dir, train):
    common = (f"log.dir={runs_dir}", "stop.target_return=null", "log.progress=none", "seed=1",
              "farm.mode=serial", "algo.normalize_obs=true")  # the test reads the serial learner's normalizer
    assert train(CONFIG_DIR / "cartpole_ppo.yaml", *common, f"stop.env_steps={FIRST_STEPS}") == 0
    run_dir = only_run_dir(runs_dir)
    first = read_summary(run_dir)
    assert first["env_steps"] == FIRST_STEPS
    assert first["episode_return_mean"] > 100  # learned something (a random policy gets ~22)

    # the normalizer of a farm restored from the checkpoint is the saved one, bit for bit
    from rlfarm.agents.checkpoint import read_checkpoint
    from rlfarm.cluster import make_farm
    from rlfarm.experiments.config import load_config

    cfg = load_config(run_dir / "config.yaml")
    saved = read_checkpoint(first["last_checkpoint"])["learner"]["normalizer"]
    farm = make_farm(cfg.env, cfg.model, cfg.algo, cfg.farm, 123, cfg.stop.env_steps)
    try:
        extra = farm.load_checkpoint(first["last_checkpoint"])
        restored = farm.learner.learner.normalizer.state_dict()
        np.testing.assert_array_equal(restored["mean"], saved["mean"].numpy())
        np.testing.assert_array_equal(restored["var"], saved["var"].numpy())
        assert restored["count"] == saved["count"] > 0
        assert farm.env_steps == FIRST_STEPS and extra["monitor"]["episodes"] == first["episodes"]
    finally:
        farm.close()

    # resume for more steps; a short return window holds only episodes of the new segment
    assert train(None, "stop.env_steps=%d" % SECOND_STEPS, "log.return_window=20",
                 extra_args=("--resume", str(run_dir))) == 0
    second = read_summary(run_dir)
    assert second["exit_reason"] == "env_steps" and second["env_steps"] == SECOND_STEPS
    assert second["episodes"] > first["episodes"]
    assert second["wall_s"] > first["wall_s"]  # the clock continues too
    assert second["episode_return_mean"] >= 0.6 * first["episode_return_mean"]

    # one curve: the resumed segment's points continue after the first segment's last step
    steps = [step for step, _ in read_scalars(str(run_dir), ["losses/value"])["losses/value"]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[-1] == SECOND_STEPS and any(FIRST_STEPS < s < SECOND_STEPS for s in steps)
    assert len(list((run_dir / "checkpoints").glob("ckpt-*.pt"))) >= 2


def test_resume_of_a_dir_without_checkpoints_exits_2(tmp_path, train, capsys):
    (tmp_path / "run").mkdir()
    assert train(None, extra_args=("--resume", str(tmp_path / "run"))) == 2
    assert "--resume: no checkpoint" in capsys.readouterr().err


def test_resume_with_a_different_model_exits_2_naming_the_mismatch(write_config, runs_dir, train, capsys):
    assert train(write_config(), "stop.env_steps=256") == 0
    run_dir = only_run_dir(runs_dir)
    capsys.readouterr()
    assert train(run_dir / "config.yaml", "model.hidden_sizes=[8]", extra_args=("--resume", str(run_dir))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlfarm train: error: --resume") and "\n" not in err
    assert read_summary(run_dir)["env_steps"] == 256  # the run was left as it was


@pytest.mark.slow
def test_resume_and_eval_fall_back_to_the_newest_checkpoint_that_loads(write_config, runs_dir, train, capsys):
    """3 checkpoints (256, 512, 768 steps), the newest cut off half-way: eval and --resume
    name it once with its reason and use the 512-step one."""
    from rlfarm.experiments.cli import main as cli_main

    assert train(write_config(), "stop.env_steps=256") == 0
    run_dir = only_run_dir(runs_dir)
    for steps in (512, 768):
        assert train(None, f"stop.env_steps={steps}", extra_args=("--resume", str(run_dir))) == 0
    checkpoints = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    assert [p.name for p in checkpoints] == [f"ckpt-{s:012d}.pt" for s in (256, 512, 768)]
    newest, valid = checkpoints[-1], checkpoints[-2]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    capsys.readouterr()

    assert cli_main(["eval", str(run_dir), "--episodes", "2"]) == 0
    out, err = capsys.readouterr()
    assert err.count(newest.name) == 1 and f"checkpoint {newest}: truncated" in err
    assert f"using {valid}" in err and "Traceback" not in err and "weights_only" not in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["checkpoint"] == str(valid) and result["env_steps"] == 512

    assert train(None, "stop.env_steps=1024", extra_args=("--resume", str(run_dir))) == 0
    err = capsys.readouterr().err
    assert err.count(newest.name) == 1 and f"checkpoint {newest}: truncated" in err
    assert f"using {valid}" in err and "Traceback" not in err
    assert read_summary(run_dir)["env_steps"] == 1024


def test_resume_when_no_checkpoint_loads_exits_2_with_the_newest_ones_reason(write_config, runs_dir, train, capsys):
    assert train(write_config(), "stop.env_steps=256") == 0
    run_dir = only_run_dir(runs_dir)
    (checkpoint,) = (run_dir / "checkpoints").glob("ckpt-*.pt")
    checkpoint.write_bytes(b"")
    capsys.readouterr()
    assert train(None, extra_args=("--resume", str(run_dir))) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rlfarm train: error: --resume: checkpoint {checkpoint}: empty (truncated)"


def test_resume_of_a_finished_run_says_so_and_trains_nothing(write_config, runs_dir, train, capsys):
    assert train(write_config()) == 0  # SMALL_CARTPOLE: its budget of 2048 env steps
    run_dir = only_run_dir(runs_dir)
    before = read_summary(run_dir)
    checkpoints = sorted((run_dir / "checkpoints").iterdir())
    capsys.readouterr()
    assert train(None, extra_args=("--resume", str(run_dir))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is finished: it ran its budget of stop.env_steps=2048" in err
    assert "--set stop.env_steps=4096" in err
    assert read_summary(run_dir) == before and sorted((run_dir / "checkpoints").iterdir()) == checkpoints

    assert train(None, "stop.env_steps=4096", extra_args=("--resume", str(run_dir))) == 0  # a raised budget
    assert read_summary(run_dir)["env_steps"] == 4096
