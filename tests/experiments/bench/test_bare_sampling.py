"""`rlfarm bench --farm --no-ray`'s measurement: the farm's runners as plain processes, no Ray."""
from __future__ import annotations

import pytest

from rlfarm.experiments.bench.bare_sampling import BareRunnerError, bare_sampling


@pytest.mark.slow
def test_bare_runners_sample_whole_fragments_side_by_side(cartpole):
    env_cfg, policy_cfg, _algo_cfg, _farm_cfg = cartpole(envs_per_runner=64)
    report = bare_sampling(env_cfg, policy_cfg, fragment_length=8, num_runners=2, seed=0,
                           seconds=0.3, warmup_s=0.1)
    assert len(report["per_runner_env_steps_per_s"]) == 2
    assert all(figure > 0 for figure in report["per_runner_env_steps_per_s"])
    assert report["env_steps"] > 0 and report["env_steps"] % (8 * 64) == 0  # whole fragments
    assert report["env_steps_per_s"] == pytest.approx(sum(report["per_runner_env_steps_per_s"]))
    assert 0.3 <= report["seconds"] < 10.0
    assert report["env_step_ms"] > 0 and report["inference_ms"] > 0
    # a runner's CPU per fragment is more than nothing and no more than its wall time per fragment
    wall_ms_per_fragment = max(1000.0 * 8 * 64 / rate for rate in report["per_runner_env_steps_per_s"])
    assert 0 < report["sampling_cpu_ms_per_fragment"] <= 1.1 * wall_ms_per_fragment


@pytest.mark.slow
def test_a_runner_that_fails_is_named_with_its_error(cartpole):
    env_cfg, policy_cfg, _algo_cfg, _farm_cfg = cartpole(env_id="rlfarm/Nope-v0")
    with pytest.raises(BareRunnerError, match=r"runner 0: \w+: .*rlfarm/Nope-v0"):
        bare_sampling(env_cfg, policy_cfg, fragment_length=8, num_runners=2, seed=0, seconds=0.2, warmup_s=0.0)
