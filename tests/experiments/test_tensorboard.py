"""TensorBoard: a short run's event files hold the stable tags, read back with EventAccumulator."""
from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlfarm.experiments.report.monitor import TAGS, documented, read_scalars

from .conftest import only_run_dir, read_summary

REQUIRED = ("charts/episode_return_mean", "charts/episode_length_mean", "charts/env_steps_per_s",
            "perf/learner_samples_per_s", "losses/policy", "losses/value", "losses/entropy",
            "losses/approx_kl", "system/rss_mb", "system/cpu_s_per_million_steps",
            "farm/runner_restarts", "farm/dropped_fragments", "farm/env_errors",
            "final/return", "final/env_steps_per_s", "final/solved", "final/wall_s")


def test_required_tags_are_documented():
    for tag in REQUIRED:
        assert tag in TAGS


def test_event_files_hold_the_required_tags_and_config(write_config, runs_dir, train):
    assert train(write_config(), "stop.env_steps=8192") == 0
    run_dir = only_run_dir(runs_dir)
    scalars = read_scalars(str(run_dir))
    for tag in REQUIRED:
        assert scalars.get(tag), f"{tag} missing from the event files"
    undocumented = [tag for tag in scalars if not documented(tag)]
    assert not undocumented, f"add these tags to experiments.monitor.TAGS: {undocumented}"
    env_steps = read_summary(run_dir)["env_steps"]
    steps = [step for step, _ in scalars["charts/env_steps_per_s"]]
    assert steps == sorted(steps) and steps[-1] == env_steps  # x axis: env steps
    assert all(value > 0 for _, value in scalars["system/rss_mb"])
    assert all(value > 0 for _, value in scalars["charts/env_steps_per_s"])
    returns = [value for _, value in scalars["charts/episode_return_mean"]]
    assert all(5 <= r <= 500 for r in returns)  # CartPole returns

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    assert "config/text_summary" in accumulator.Tags()["tensors"]
    text = accumulator.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "rlfarm/CartPole-v1" in text and "fragment_length: 16" in text
    assert "\n    algo:\n      name: ppo\n" in text and "rho_bar:" not in text  # block style, PPO keys
    summary_text = accumulator.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"exit_reason": "env_steps"' in summary_text


def _session_hparams(run_dir) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for name, value in start.hparams.items()}


@pytest.mark.slow
def test_hparams_hold_every_field_that_differs_from_its_default(write_config, runs_dir, train):
    """Two runs that differ only in algo.clip_coef differ in their HPARAMS rows."""
    for clip in (0.1, 0.3):
        assert train(write_config({"algo": {"clip_coef": clip}, "stop": {"env_steps": 256}})) == 0
    rows = [_session_hparams(run) for run in sorted(runs_dir.iterdir())]
    assert sorted(row["algo.clip_coef"] for row in rows) == [0.1, 0.3]
    assert rows[0]["lr"] == rows[1]["lr"] == 1e-3 and rows[0]["algo.minibatches"] == 2.0  # SMALL_CARTPOLE's
    assert not any(key.startswith("log.") or key == "name" for key in rows[0])


def test_hparams_hold_the_swept_fields_even_at_their_defaults():
    from rlfarm.experiments.config import ExperimentConfig
    from rlfarm.experiments.report.console import hparams

    assert "algo.clip_coef" not in hparams(ExperimentConfig())
    assert hparams(ExperimentConfig(), keys=["algo.clip_coef"])["algo.clip_coef"] == 0.2
