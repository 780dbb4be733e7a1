"""No config text reaches a shell (issue 19, case 7): names are checked, every value that goes
into an sbatch script or a Ray Job entrypoint is quoted, and duplicate YAML keys are errors.

The quoting is checked by running the generated shell text in real bash, in a folder where an
injected command would leave a file behind.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from rlfarm.cluster.launch import slurm
from rlfarm.experiments.config import config_from_dict, load_config
from rlfarm.experiments.errors import ConfigError
from rlfarm.experiments.launch import submit

from .conftest import SMALL_CARTPOLE, merge

HOSTILE = ["a\ntouch INJECTED", "$(touch INJECTED)", "`touch INJECTED`", "it's \"quoted\"",
           "x; touch INJECTED", "a\x00b", "n" * 101, ".", ".."]
"""Texts that would run `touch INJECTED` (or break a line or a path) if a shell read them."""
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_outside_the_rules_is_refused_naming_the_field(name):
    with pytest.raises(ConfigError, match=r"^name: must be 1-100 letters"):
        config_from_dict(merge(SMALL_CARTPOLE, {"name": name}))


def test_a_good_name_and_a_hostile_file_name(tmp_path):
    assert config_from_dict(merge(SMALL_CARTPOLE, {"name": "Cart_pole-2.v1"})).name == "Cart_pole-2.v1"
    path = tmp_path / "my run $(touch INJECTED);`x`.yaml"
    path.write_text("stop: {env_steps: 10}\n")
    assert load_config(path).name == "my-run---touch-INJECTED---x-"  # the default name is made safe


def test_duplicate_yaml_keys_are_an_error_naming_the_key(write_config, train, capsys):
    config = write_config(text="env: {id: rlfarm/CartPole-v1}\nalgo:\n  lr: 0.1\n  lr: 0.2\n")
    assert train(config) == 2
    err = capsys.readouterr().err
    assert "duplicate key 'lr'" in err and "line 4" in err and "Traceback" not in err


def _fake_python(folder: Path) -> Path:
    """A `python` that records its arguments (and the config file it was given) as JSON: the
    shell's quoting is what is under test, not the training."""
    shim = folder / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text('#!/bin/bash\nexec python3 -c "import json, sys; args = sys.argv[1:]; '
                    'print(json.dumps({\'argv\': args, \'config\': open(args[3]).read()}))" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim.parent


@pytest.mark.parametrize("hostile", HOSTILE[:5])
def test_submit_entrypoint_passes_hostile_paths_and_overrides_as_plain_words(tmp_path, hostile):
    config_dir = tmp_path / f"dir {hostile}"
    config_dir.mkdir()
    config = config_dir / f"c{hostile}.yaml"
    text = f"name: x\n# {hostile}\n"
    config.write_text(text)
    overrides = [f"name={hostile}", f"log.dir={hostile}"]
    command = submit.build_entrypoint(str(config), overrides, f"/runs/{hostile}", str(REPO))
    workdir = tmp_path / "job"
    workdir.mkdir()
    env = {**os.environ, "PATH": f"{_fake_python(tmp_path)}:{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["argv"][4:] == ["--set", overrides[0], "--set", overrides[1], "--run-dir", f"/runs/{hostile}"]
    assert seen["argv"][3].endswith(f"/c{hostile}.yaml") and seen["config"] == text
    assert not list(workdir.iterdir()) and not (tmp_path / "INJECTED").exists()


@pytest.mark.parametrize("hostile", HOSTILE[:5])
def test_sbatch_settings_carry_hostile_paths_and_overrides_as_plain_values(tmp_path, hostile):
    spec = slurm.SlurmJobSpec(config=f"configs/{hostile}.yaml", nodes=1, overrides=[f"name={hostile}", "seed=1"],
                              workdir=str(tmp_path), python=f"/opt/{hostile}/python")
    script = slurm.render_script(spec)
    assert sum(line.startswith("#SBATCH") for line in script.splitlines()) == len(slurm.sbatch_lines(spec))
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    code = f'source {path} && printf "%s\\0" "$RLFARM_CONFIG" "$RLFARM_PYTHON" "${{RLFARM_OVERRIDES[@]}}"'
    run = subprocess.run(["bash", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "RLFARM_SOURCE_ONLY": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\0")[:-1] == [f"configs/{hostile}.yaml", f"/opt/{hostile}/python",
                                           "--set", f"name={hostile}", "--set", "seed=1"]
    assert not (tmp_path / "INJECTED").exists()


@pytest.mark.parametrize("option, field", [("--output", "output"), ("--chdir", "workdir"),
                                           ("--partition", "partition"), ("--account", "account"),
                                           ("--job-name", "job_name")])
@pytest.mark.parametrize("hostile", ["a\n#SBATCH --nodes=99\ntouch INJECTED", "a b", "it's", "a\\b"])
def test_an_sbatch_directive_value_that_a_line_cannot_hold_is_refused(option, field, hostile):
    with pytest.raises(ValueError, match=f"^{option}: "):
        slurm.SlurmJobSpec(config="c.yaml", nodes=1, **{field: hostile})


def test_rlfarm_slurm_refuses_a_log_dir_with_a_newline(write_config, tmp_path, monkeypatch, capsys):
    from rlfarm.experiments.cli import main

    monkeypatch.chdir(tmp_path)
    config = write_config({"log": {"dir": str(tmp_path / "a\n#SBATCH --nodes=99")}})
    assert main(["slurm", str(config), "--nodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "--output: " in err and "Traceback" not in err
