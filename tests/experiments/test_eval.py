"""`rlfarm eval`: deterministic returns of a run's last checkpoint, and a GIF of copy 0."""
from __future__ import annotations

import json

import pytest

from rlfarm.experiments.cli import main as cli_main

from .conftest import only_run_dir


@pytest.fixture
def trained_run(write_config, runs_dir, train):
    assert train(write_config(), "stop.env_steps=4096") == 0
    return only_run_dir(runs_dir)


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_eval_prints_mean_and_std_and_is_deterministic(trained_run, capsys):
    assert cli_main(["eval", str(trained_run), "--episodes", "6"]) == 0
    out = capsys.readouterr().out
    assert "rlfarm eval: return" in out and "+-" in out and "over 6 episodes" in out
    first = last_json(out)
    assert first["episodes"] == 6 and first["return_mean"] > 0 and first["return_std"] >= 0
    assert first["env_steps"] == 4096
    assert cli_main(["eval", str(trained_run), "--episodes", "6"]) == 0
    assert last_json(capsys.readouterr().out) == first
    assert cli_main(["eval", str(trained_run), "--episodes", "6", "--seed", "1"]) == 0
    assert last_json(capsys.readouterr().out)["episodes"] == 6


@pytest.mark.slow
def test_eval_writes_a_gif_of_copy_0(trained_run, tmp_path, capsys):
    from PIL import Image

    gif = tmp_path / "cartpole.gif"
    assert cli_main(["eval", str(trained_run), "--episodes", "2", "--gif", str(gif)]) == 0
    result = last_json(capsys.readouterr().out)
    with Image.open(gif) as image:
        # Pillow merges identical consecutive frames, so the file may hold fewer
        assert image.format == "GIF" and 1 < image.n_frames <= result["gif_frames"]
        assert image.size == (300, 200)


def test_eval_of_a_folder_that_is_no_run_dir_exits_2(tmp_path, capsys):
    assert cli_main(["eval", str(tmp_path)]) == 2
    assert "not a run dir" in capsys.readouterr().err
    assert cli_main(["eval", str(tmp_path), "--episodes", "0"]) == 2


def test_a_bad_torch_thread_count_exits_2_naming_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLFARM_TORCH_THREADS", "many")
    assert cli_main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "RLFARM_TORCH_THREADS: expected an integer >= 1, got 'many'" in err and "Traceback" not in err
