"""rlfarm's Python API (experiments/api.py, docs/api.md): train, Run, Policy, evaluate, and
scripts that call train many times without leaking threads, files or Ray sessions."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import rlfarm
from rlfarm.experiments import api

from .conftest import SMALL_CARTPOLE, merge

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small(write_config):
    """A 2048-step serial CartPole config file."""
    return write_config({"log": {"progress": "none"}})


def test_load_config_takes_a_dict_of_overrides_and_names_a_bad_field(small):
    cfg = rlfarm.load_config(small, {"seed": 7, "algo.lr": 3e-4, "model.hidden_sizes": [8, 8]})
    assert (cfg.seed, cfg.algo.lr, list(cfg.model.hidden_sizes)) == (7, 3e-4, [8, 8])
    with pytest.raises(rlfarm.ConfigError, match=r"^algo\.lr"):
        rlfarm.load_config(small, {"algo.lr": -1})


def test_train_returns_a_run_with_summary_config_curves_policy_and_evaluation(small):
    run = rlfarm.train(rlfarm.load_config(small))
    assert run.summary["exit_reason"] == "env_steps" and run.summary["env_steps"] >= 2048
    assert run.config == rlfarm.load_config(run.dir / "config.yaml")
    steps, values = run.scalars("charts/episode_length_mean")
    assert steps.dtype == np.int64 and values.dtype == np.float64 and len(steps) == len(values) >= 1
    assert np.all(np.diff(steps) >= 0)
    with pytest.raises(KeyError, match="no/such"):
        run.scalars("no/such")
    policy = run.policy()
    obs = np.zeros((5, 4), np.float32)
    actions = policy.act(obs, deterministic=True)
    assert actions.shape == (5,) and set(np.unique(actions)) <= {0, 1}
    assert np.array_equal(actions, policy.act(obs, deterministic=True))
    reopened = rlfarm.Run(str(run.dir))
    assert reopened.summary == run.summary and reopened.checkpoints == run.checkpoints
    result = rlfarm.evaluate(reopened, episodes=3)
    assert result["episodes"] == 3 and result["env_steps"] == run.summary["env_steps"]
    assert 1 <= result["return_mean"] <= 500


def test_a_callback_sees_every_iteration_can_log_custom_scalars_and_stop_the_run(small):
    seen: list[dict] = []

    def callback(metrics):
        seen.append(metrics)
        return {"twice_steps": 2 * metrics["env_steps"], "stop": metrics["env_steps"] >= 512}

    cfg = rlfarm.load_config(small, {"stop.env_steps": 100_000, "log.report_interval_s": 0.001})
    run = rlfarm.train(cfg, callbacks=[callback])
    assert run.summary["exit_reason"] == "callback" and run.summary["env_steps"] == 512
    assert [m["env_steps"] for m in seen] == [256, 512]  # 2 runners x 8 copies x 16 steps per update
    assert {"episode_return_mean", "episodes", "wall_s"} <= set(seen[0])
    steps, values = run.scalars("custom/twice_steps")
    assert list(values) == [2.0 * s for s in steps] and steps[-1] == 512
    assert run.checkpoints, "a callback stop still writes the final checkpoint"


def test_a_crash_raises_training_error_with_the_run_and_ctrl_c_raises_after_checkpointing(small):
    def crash(metrics):
        raise RuntimeError("boom in a callback")

    with pytest.raises(rlfarm.TrainingError, match="boom in a callback") as info:
        rlfarm.train(rlfarm.load_config(small), callbacks=[crash])
    assert info.value.run.summary["exit_reason"] == "crashed"

    def interrupt(metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="checkpoint and summary in"):
        rlfarm.train(rlfarm.load_config(small), callbacks=[interrupt])
    runs = sorted(Path(rlfarm.load_config(small).log.dir).iterdir())
    interrupted = rlfarm.Run(runs[-1])
    assert interrupted.summary["exit_reason"] == "interrupted" and interrupted.checkpoints


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_five_trainings_in_a_row_and_two_in_threads_leak_nothing(small):
    """After the first call has loaded everything lazily, more calls add no threads or files."""
    cfg = rlfarm.load_config(small)
    rlfarm.train(cfg)
    threads, fds = threading.active_count(), open_fds()
    runs = [rlfarm.train(cfg) for _ in range(5)]
    assert len({run.dir for run in runs}) == 5
    assert all(run.summary["exit_reason"] == "env_steps" for run in runs)
    assert threading.active_count() == threads and open_fds() <= fds

    results: list = []
    workers = [threading.Thread(target=lambda: results.append(rlfarm.train(cfg))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert len(results) == 2 and results[0].dir != results[1].dir
    assert all(run.summary["env_steps"] >= 2048 for run in results)
    assert threading.active_count() == threads and open_fds() <= fds


@pytest.mark.slow
def test_a_ray_mode_training_shuts_down_the_ray_it_started(write_config):
    import ray

    cfg = rlfarm.load_config(write_config(merge(SMALL_CARTPOLE, {"farm": {"mode": "ray", "num_runners": 1},
                                                                  "log": {"progress": "none"}})))
    threads = threading.active_count()
    run = rlfarm.train(cfg)
    assert run.summary["exit_reason"] == "env_steps"
    assert not ray.is_initialized()
    assert threading.active_count() <= threads + 1  # at most a finished helper thread being reaped


def test_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(rlfarm.ConfigError, match="not a run dir"):
        rlfarm.Run(tmp_path)
    with pytest.raises(AttributeError):
        rlfarm.no_such_function  # noqa: B018


@pytest.mark.slow
def test_the_seed_study_example_trains_five_seeds_and_plots(tmp_path):
    env = {**os.environ, "RLFARM_TORCH_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "experiments/examples/seed_study.py"),
                           "--config", str(REPO / "experiments/configs/cartpole_ppo.yaml"),
                           "--env-steps", "8192", "--out", str(tmp_path / "seeds.png")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "seeds.png").stat().st_size > 10_000
    assert len(list((tmp_path / "runs").iterdir())) == 5
    assert "final return" in proc.stdout


def test_api_module_is_what_the_package_root_exports():
    assert rlfarm.train is api.train and rlfarm.Run is api.Run and rlfarm.evaluate is api.evaluate
