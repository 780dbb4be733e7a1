"""One line for every bad input (issue 26, case 6): the user's module failing at import, an
`env.id` that is not an env, a config that is not UTF-8, numbers out of range, a model that
cannot fit, a `--gif` folder that does not exist, the API's numpy scalars and arguments, and
an env whose observations change shape after the checks. Each is one short report (the
user's file:line where there is one), exit 2 for configuration errors and 1 otherwise,
never a traceback, and nothing is called or created first."""
from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import numpy as np
import pytest

import rlfarm
from rlfarm.experiments.run import capacity

from .conftest import only_run_dir, read_summary


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """user_module(source) -> a fresh module name importable from tmp_path."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"user_mod_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(source)
        return name

    return write


def _lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("source, code, kind", [
    ("raise RuntimeError('boom at import')\n", 1, "RuntimeError: boom at import"),
    ("def f(:\n", 2, "SyntaxError"),
    ("import no_such_inner_module_xyz\n", 2, "ModuleNotFoundError: No module named 'no_such_inner_module_xyz'"),
    ("import sys\nsys.exit(0)\n", 1, "SystemExit: the module called sys.exit(0)"),
])
def test_an_error_in_the_users_module_at_import_is_its_short_report(write_config, train, capsys, user_module,
                                                                    source, code, kind):
    name = user_module(source)
    assert train(write_config(), f"env.imports=[{name}]") == code
    lines = _lines(capsys)
    assert len(lines) <= 3 and kind in lines[0], lines
    assert f"{name}.py:" in "\n".join(lines), lines  # the user's file:line


def test_envs_check_of_a_module_that_exits_at_import_does_not_pass(capsys, user_module):
    from rlfarm.experiments.cli import main

    name = user_module("import sys\nsys.exit(0)\n")
    assert main(["envs", "check", f"{name}:Env"]) == 1
    assert "sys.exit(0)" in _lines(capsys)[0]


@pytest.mark.parametrize("env_id", ["os:system", "builtins:print", "os:_exit", "collections:OrderedDict"])
def test_an_env_id_that_is_not_an_env_is_refused_without_being_called(write_config, train, capsys, env_id):
    assert train(write_config(), f"env.id={env_id}") == 2
    out = capsys.readouterr()
    assert out.out == "" and "Traceback" not in out.err  # print was not called
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and "not an env" in lines[0] and "env.id" in lines[0], lines


def test_a_marked_factory_is_an_env_and_an_unmarked_one_is_not(user_module):
    from rlfarm import envs

    name = user_module(
        "from rlfarm.envs import env_factory\nfrom rlfarm.envs.cartpole import CartPoleBatched\n\n"
        "@env_factory\ndef marked(num_envs, **kwargs):\n    return CartPoleBatched(num_envs, **kwargs)\n\n"
        "def unmarked(num_envs, **kwargs):\n    raise AssertionError('called')\n")
    env = envs.make(f"{name}:marked", 2)
    assert env.num_envs == 2
    env.close()
    with pytest.raises(envs.EnvSpecError, match="not an env"):
        envs.make(f"{name}:unmarked", 2)


def test_a_config_that_is_not_utf8_is_one_line_for_train_resume_and_eval(write_config, runs_dir, train, capsys):
    from rlfarm.experiments.cli import main

    latin1 = write_config(text="name: t\n# caf\xe9\n")
    latin1.write_bytes("name: t\n# caf\xe9\n".encode("latin-1"))
    assert train(latin1) == 2
    assert "not UTF-8" in _lines(capsys)[0]
    assert train(write_config()) == 0
    run_dir = only_run_dir(runs_dir)
    (run_dir / "config.yaml").write_bytes((run_dir / "config.yaml").read_bytes() + "# caf\xe9\n".encode("latin-1"))
    capsys.readouterr()
    assert train(None, extra_args=("--resume", str(run_dir))) == 2
    assert "not UTF-8" in _lines(capsys)[0]
    assert main(["eval", str(run_dir)]) == 2
    assert "not UTF-8" in _lines(capsys)[0]


@pytest.mark.parametrize("override, field", [("stop.env_steps=1e30", "stop.env_steps"),
                                             ("seed=1e20", "seed"), ("algo.lr=.inf", "algo.lr")])
def test_numbers_out_of_range_name_their_field(write_config, train, capsys, override, field):
    assert train(write_config(), override) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and f"{field}:" in lines[0], lines


def test_a_far_wall_s_runs_and_writes_its_summary(write_config, runs_dir, train):
    assert train(write_config({"stop": {"env_steps": 256, "wall_s": 1e10}})) == 0  # an OverflowError before
    assert read_summary(only_run_dir(runs_dir))["exit_reason"] == "env_steps"


def test_a_model_that_cannot_fit_joins_the_capacity_check(write_config, train, capsys, monkeypatch):
    monkeypatch.setattr(capacity, "available_memory_bytes", lambda: 2**30)
    assert train(write_config({"model": {"hidden_sizes": [4096] * 64}})) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and "error: model.hidden_sizes: 130 layers" in lines[0], lines  # 2 trunks x 64 + 2 heads


def test_gif_into_a_missing_folder_is_refused_and_creates_nothing(write_config, runs_dir, train, tmp_path, capsys):
    from rlfarm.experiments.cli import main

    assert train(write_config()) == 0
    target = tmp_path / "no" / "such" / "dir" / "x.gif"
    capsys.readouterr()
    assert main(["eval", str(only_run_dir(runs_dir)), "--gif", str(target)]) == 2
    assert "--gif:" in _lines(capsys)[0]
    assert not (tmp_path / "no").exists()


def test_the_api_takes_numpy_scalars_and_names_bad_arguments(write_config, tmp_path):
    cfg = rlfarm.load_config(write_config(), {"algo.epochs": np.int64(2), "algo.lr": np.float32(0.5)})
    assert cfg.algo.epochs == 2 and abs(cfg.algo.lr - 0.5) < 1e-7
    run = rlfarm.train(cfg)
    with pytest.raises(rlfarm.ConfigError, match=r"^episodes: expected an integer >= 1, got str '5'"):
        rlfarm.evaluate(run, episodes="5")
    assert rlfarm.evaluate(run, episodes=np.int64(2))["episodes"] == 2


def test_envs_check_fails_an_env_whose_observations_change_shape_late(capsys, user_module):
    from rlfarm.experiments.cli import main

    name = user_module(
        "import numpy as np\nfrom rlfarm.envs.cartpole import CartPoleBatched\n\n"
        "class Late(CartPoleBatched):\n"
        "    def __init__(self, num_envs=1, **kwargs):\n"
        "        super().__init__(num_envs, **kwargs)\n        self.t = 0\n\n"
        "    def step(self, actions):\n        self.t += 1\n        obs, *rest = super().step(actions)\n"
        "        if self.t > 600:\n            obs = np.concatenate([obs, obs[:, :1]], axis=1)\n"
        "        return (obs, *rest)\n")
    assert main(["envs", "check", f"{name}:Late", "--seconds", "0.5", "--speed-envs", "16"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "FAIL speed: ValueError: observation shape" in out.out, out


def test_a_bridge_command_that_is_not_executable_is_one_line(write_config, train, capsys, tmp_path):
    script = tmp_path / "sim.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    if os.access(script, os.X_OK):
        pytest.skip("running as a user who may execute anything")
    config = write_config({"env": {"id": "rlfarm/Subprocess-v0", "envs_per_runner": 2,
                                   "kwargs": {"command": [str(script)], "obs_dim": 4, "num_actions": 2}}})
    assert train(config) == 2
    lines = _lines(capsys)
    assert any("command: cannot run" in line for line in lines), lines


def test_resolving_never_runs_an_unmarked_callable(tmp_path, user_module):
    from rlfarm import envs

    marker = tmp_path / "called"
    name = user_module(f"def make(num_envs, **kwargs):\n    open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(envs.EnvSpecError):
        envs.make(f"{name}:make", 1)
    assert not Path(marker).exists()


def test_a_config_file_over_the_bound_is_refused_before_yaml_reads_it(write_config, train, capsys, monkeypatch):
    from rlfarm.experiments import config as config_module

    big = write_config(text="")
    with open(big, "w") as stream:  # 2,000,000 widths: YAML took about 100 s and 0.75 GB over them
        stream.write("model:\n  hidden_sizes: [" + ", ".join(["64"] * 2_000_000) + "]\n")
    size = f"{big.stat().st_size:,} bytes"
    monkeypatch.setattr(config_module.yaml, "load", lambda *a, **k: pytest.fail("YAML read the file"))
    assert train(big) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and f"{big}: {size}, more than the 1,048,576 bytes" in lines[0], lines
    with pytest.raises(rlfarm.ConfigError, match=f"^{big}: {size}"):
        rlfarm.load_config(big)


@pytest.mark.parametrize("command", ["sweep", "scale"])
def test_a_sweep_file_over_the_bound_is_refused_before_yaml_reads_it(tmp_path, capsys, command):
    from rlfarm.experiments.cli import main as cli_main

    big = tmp_path / "big_sweep.yaml"
    big.write_text("sweep:\n  parameters:\n    algo.lr: [" + ", ".join(["1.0e-3"] * 200_000) + "]\n")
    assert cli_main([command, str(big)]) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and f"{big}: {big.stat().st_size:,} bytes, more than the 1,048,576" in lines[0], lines


def test_an_override_over_the_bound_names_its_key(write_config, train, capsys):
    item = "model.hidden_sizes=[" + ",".join(["64"] * 30_000) + "]"
    expected = f"--set model.hidden_sizes: {len(item):,} characters, more than the 65,536"
    assert train(write_config(), item) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and expected in lines[0], lines
    with pytest.raises(rlfarm.ConfigError, match=f"^{expected}"):
        rlfarm.load_config(write_config(), [item])
    with pytest.raises(rlfarm.ConfigError, match=r"^--set model\.hidden_sizes: [\d,]+ characters"):  # a mapping
        rlfarm.load_config(write_config(), {"model.hidden_sizes": [64] * 30_000})


def test_a_list_over_the_bound_is_refused_before_its_items_are_checked(write_config, train, capsys):
    config = write_config(text="model:\n  hidden_sizes: [" + ",".join(["8"] * 20_000) + "]\n")
    assert train(config) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and "model.hidden_sizes: 20,000 items, more than the 10,000" in lines[0], lines


def test_the_driver_builds_the_env_once_before_the_runners(write_config, train, user_module, tmp_path, monkeypatch):
    """Issue 26: an env whose __init__ took 60 s was built three times before training (the
    capacity probe, the driver's check, the runner); the driver now builds one copy, once."""
    builds = tmp_path / "builds"
    monkeypatch.setenv("COUNT_FILE", str(builds))
    name = user_module(
        "import os\nfrom rlfarm.envs.cartpole import CartPoleBatched\n\n"
        "class Counted(CartPoleBatched):\n    def __init__(self, num_envs=1, **kwargs):\n"
        "        with open(os.environ['COUNT_FILE'], 'a') as stream:\n"
        "            stream.write(f'{num_envs}\\n')\n        super().__init__(num_envs, **kwargs)\n")
    assert train(write_config({"env": {"id": f"{name}:Counted", "envs_per_runner": 8},
                               "stop": {"env_steps": 256}, "log": {"pictures": False}})) == 0
    sizes = [int(line) for line in builds.read_text().split()]
    assert sizes[:3] == [1, 8, 8], sizes  # the driver's one copy, then the two serial runners' 8
