"""`rlfarm envs` and `rlfarm bench` (env-only), run as the CLI runs them, in a subprocess
(the benchmark pins its process to one core); also `rlfarm bench --farm --runners`'s report
and option errors, and `--no-ray`, which need no Ray (the farm's measurement is
test_farm_sampling.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def rlfarm(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "rlfarm.experiments.cli", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.slow
def test_envs_lists_every_rlfarm_env_with_its_spaces():
    out = rlfarm("envs")
    assert out.returncode == 0, out.stderr
    for env_id in ("rlfarm/CartPole-v1", "rlfarm/Pendulum-v1", "rlfarm/HeatControl-v0",
                   "rlfarm/KuramotoSivashinsky-v0"):
        assert env_id in out.stdout
    assert "Discrete(2)" in out.stdout and "(2, 16, 16)" in out.stdout
    assert "grid_size" in out.stdout and "num_actuators" in out.stdout  # the accepted keywords


@pytest.mark.slow
def test_bench_json_has_a_ratio_against_gymnasium():
    out = rlfarm("bench", "--env", "rlfarm/CartPole-v1", "--env", "rlfarm/KuramotoSivashinsky-v0",
                 "--num-envs", "16,64", "--seconds", "0.15", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {(r["env"], r["num_envs"]): r for r in report["results"]}
    assert set(rows) == {(e, n) for e in ("rlfarm/CartPole-v1", "rlfarm/KuramotoSivashinsky-v0")
                         for n in (16, 64)}
    cartpole = rows[("rlfarm/CartPole-v1", 64)]
    assert cartpole["steps_per_s"] > 0 and cartpole["reference_steps_per_s"] > 0
    assert cartpole["ratio"] == pytest.approx(cartpole["steps_per_s"] / cartpole["reference_steps_per_s"])
    assert "ratio" not in rows[("rlfarm/KuramotoSivashinsky-v0", 16)]


@pytest.mark.slow
def test_bench_table_and_bad_arguments():
    out = rlfarm("bench", "--env", "rlfarm/Pendulum-v1", "--num-envs", "8", "--seconds", "0.1")
    assert out.returncode == 0, out.stderr
    assert "rlfarm/Pendulum-v1" in out.stdout and "SyncVectorEnv" in out.stdout and "x " in out.stdout
    bad = rlfarm("bench", "--num-envs", "64,lots")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--num-envs" in bad.stderr
    unknown = rlfarm("bench", "--env", "rlfarm/Nope-v0")
    assert unknown.returncode == 2 and "rlfarm/CartPole-v1" in unknown.stderr


def test_weak_scaling_report_takes_medians_and_ratios():
    from rlfarm.experiments.bench.farm import weak_scaling_report

    rounds = [{1: 1.0e6, 2: 1.9e6}, {1: 1.2e6, 2: 2.0e6}, {1: 0.8e6, 2: 1.8e6}]
    report = weak_scaling_report(rounds, [1, 2])
    two = report["runners"]["2"]
    assert report["rounds"] == 3
    assert (two["median"], two["min"], two["max"]) == (1.9e6, 1.8e6, 2.0e6)
    assert two["speedup"] == pytest.approx(1.9)  # 1.9M over the 1-runner median of 1.0M
    assert two["round_speedup_median"] == pytest.approx(1.9)  # of 1.9, 1.667 and 2.25
    assert report["runners"]["1"]["speedup"] == 1.0


@pytest.mark.slow
def test_weak_scaling_bad_arguments_name_the_option():
    no_farm = rlfarm("bench", "--runners", "1,2")
    assert no_farm.returncode == 2 and no_farm.stderr.count("\n") == 1 and "--runners" in no_farm.stderr
    bad = rlfarm("bench", "--farm", "experiments/configs/bench_farm.yaml", "--runners", "1,two")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--runners" in bad.stderr
    rounds = rlfarm("bench", "--farm", "experiments/configs/bench_farm.yaml", "--runners", "1,2", "--repeat", "0")
    assert rounds.returncode == 2 and "--repeat" in rounds.stderr
    both = rlfarm("bench", "--farm", "experiments/configs/bench_farm.yaml", "--runners", "1,2", "--vs-rllib")
    assert both.returncode == 2 and "--vs-rllib" in both.stderr


@pytest.mark.slow
def test_no_ray_weak_scaling_reports_every_runner_count():
    out = rlfarm("bench", "--farm", "experiments/configs/bench_farm.yaml", "--no-ray", "--runners", "1,2",
                 "--repeat", "1", "--seconds", "0.2", "--set", "env.envs_per_runner=64", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["no_ray"] is True and report["rounds"] == 1
    assert report["runners"]["1"]["median"] > 0 and report["runners"]["2"]["median"] > 0
    text = rlfarm("bench", "--farm", "experiments/configs/bench_farm.yaml", "--no-ray", "--runners", "1,2",
                  "--repeat", "1", "--seconds", "0.2", "--set", "env.envs_per_runner=64")
    assert text.returncode == 0 and "weak scaling: every runner keeps 64 envs, so the env steps per update grow" \
        in text.stderr


@pytest.mark.slow
def test_no_ray_bad_arguments_name_the_option():
    no_farm = rlfarm("bench", "--no-ray")
    assert no_farm.returncode == 2 and no_farm.stderr.count("\n") == 1 and "--no-ray" in no_farm.stderr
    rllib = rlfarm("bench", "--farm", "experiments/configs/bench_farm.yaml", "--no-ray", "--vs-rllib")
    assert rllib.returncode == 2 and "--no-ray" in rllib.stderr and "--vs-rllib" in rllib.stderr
