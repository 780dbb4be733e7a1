"""The learner benchmark runs and reports what it measured."""
from __future__ import annotations

import json

from rlfarm.experiments.bench import learner as bench_learner


def test_bench_learner_json_on_cpu(capsys):
    assert bench_learner.main(["--batch", "2048", "--device", "cpu", "--repeats", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch"] == 2048 and result["device"] == "cpu" and result["epochs"] == 1
    assert result["samples_per_s"] > 0 and result["update_ms_median"] > 0
    assert result["cuda_graphs"] is False  # graphs are a CUDA path only


def test_bench_learner_rejects_bad_batch(capsys):
    assert bench_learner.main(["--batch", "10"]) == 2
    assert "--batch" in capsys.readouterr().err
