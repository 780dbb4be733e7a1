"""rlfarm/Subprocess-v0: the C and Python reference simulators match the built-in CartPole,
follow the conventions and train to its target through the Ray farm; a program that crashes,
hangs or garbles is restarted and counted; a killed runner leaves no simulator behind."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs import conventions, subprocess_env
from rlfarm.envs.cartpole import CartPoleBatched

from .conftest import alive

PYTHON_SIM = ["{python}", "-m", "rlfarm.envs.sims.cartpole_sim"]
FAULTY_SIM = str(Path(__file__).with_name("faulty_sim.py"))
CARTPOLE = {"obs_dim": 4, "num_actions": 2}


@pytest.fixture(scope="module")
def c_sim(tmp_path_factory) -> list[str]:
    """The C simulator built with the system's cc; skipped without one, except in CI."""
    from rlfarm.envs.sims import c_cartpole

    if shutil.which(os.environ.get("CC", "cc")) is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but there is no C compiler (cc) to build envs/sims/cartpole_sim.c")
        pytest.skip("no C compiler (cc) on PATH to build envs/sims/cartpole_sim.c")
    return [c_cartpole.build(str(tmp_path_factory.mktemp("sims")))]


@pytest.fixture(params=["c", "python"])
def sim_command(request, c_sim) -> list[str]:
    return c_sim if request.param == "c" else PYTHON_SIM




def test_reference_simulators_match_the_builtin_cartpole(sim_command):
    env = envs.make("rlfarm/Subprocess-v0", 6, command=sim_command, copies_per_process=4, **CARTPOLE)
    ref = CartPoleBatched(6)
    np.testing.assert_array_equal(env.reset(seed=3)[0], ref.reset(seed=3)[0])
    rng = np.random.default_rng(0)
    for _ in range(200):  # several episodes: ends and autoresets line up too
        actions = rng.integers(0, 2, 6)
        got, want = env.step(actions), ref.step(actions)
        np.testing.assert_allclose(got[0], want[0], atol=1e-4)
        for x, y in zip(got[1:4], want[1:4]):
            np.testing.assert_array_equal(x, y)
    pids = env.pids()
    assert len(pids) == 2
    env.close()
    assert not any(alive(pid) for pid in pids)


def test_the_c_simulator_follows_the_conventions(c_sim):
    results = conventions.check("rlfarm/Subprocess-v0", 4, kwargs={"command": c_sim, **CARTPOLE})
    assert [r for r in results if not r.ok] == []


WHY = {"crash": "simulator process 0: the simulator exited with status 3",  # faulty_sim's os._exit(3)
       "hang": "simulator process 0: no reply within 0.5 s",
       "garble": "simulator process 0: malformed reply: expected b'RLFM', got b'JUNK'"}


@pytest.mark.parametrize("mode", ["crash", "hang", "garble"])
def test_a_misbehaving_program_is_killed_restarted_and_counted(mode, tmp_path, monkeypatch):
    # the short step timeout only where it is the fault under test: elsewhere one slow reply on
    # a loaded machine would add a fault; a crashed program's supervisor gets time to report
    monkeypatch.setattr(subprocess_env, "EXIT_WAIT_S", 5.0)
    command = [sys.executable, FAULTY_SIM, mode, "30", str(tmp_path / "marker")]
    env = envs.make("rlfarm/Subprocess-v0", 8, command=command, copies_per_process=4,
                    step_timeout_s=0.5 if mode == "hang" else 5.0, **CARTPOLE)
    env.reset(seed=0)
    first_pids = env.pids()
    errors, messages = 0, []
    for _ in range(60):  # the faulty incarnation misbehaves at its 30th reply
        obs, rewards, terminated, truncated, infos = env.step(np.zeros(8, np.int64))
        errors += infos.get("env_errors", 0)
        messages += [infos["env_error_message"]] if "env_error_message" in infos else []
        assert np.isfinite(obs).all()
    assert errors == 4 and env.restarts == 1  # one process's copies, once
    assert messages == [WHY[mode]]  # what happened, in words (the runner prints it)
    assert not alive(first_pids[0]) and env.pids()[1] == first_pids[1]
    pids = env.pids()
    env.close()
    assert not any(alive(pid) for pid in pids)


def test_bad_commands_and_spaces_are_config_errors(c_sim):
    with pytest.raises(ValueError, match="^command: cannot run 'no-such-simulator'"):
        envs.make("rlfarm/Subprocess-v0", 2, command=["no-such-simulator"], **CARTPOLE)
    with pytest.raises(ValueError, match=r"^command: the program declares protocol 1, obs_dim=4, num_actions=2 "
                                         r"\(a discrete action\); the env's kwargs say protocol 1, obs_dim=3, "):
        envs.make("rlfarm/Subprocess-v0", 2, command=c_sim, obs_dim=3, num_actions=2)
    with pytest.raises(ValueError, match=r"num_actions=2 \(a discrete action\); .* action_dim=2 \(a box action\)"):
        envs.make("rlfarm/Subprocess-v0", 2, command=c_sim, obs_dim=4, action_dim=2)


BOX_SIM = ["{python}", str(Path(__file__).with_name("box_sim.py"))]


def test_box_actions_take_per_dimension_bounds_and_bad_bounds_name_the_key():
    env = envs.make("rlfarm/Subprocess-v0", 3, command=BOX_SIM, obs_dim=2, action_dim=2,
                    action_low=[-1.0, 0.0], action_high=[1.0, 5.0])
    assert env.single_action_space == gym.spaces.Box(np.array([-1, 0], np.float32), np.array([1, 5], np.float32))
    env.reset(seed=0)
    actions = np.array([[0.5, 4.0], [-1.0, 0.0], [1.0, 5.0]], np.float32)
    obs, *_ = env.step(actions)
    np.testing.assert_array_equal(obs, actions)  # what the program received, shape (N, action_dim)
    env.close()
    for kwargs, message in [({"action_low": [-1.0]}, "action_low: expected a finite number or a list of "
                                                      "action_dim=2 finite numbers, got [-1.0]"),
                            ({"action_high": "big"}, "action_high: expected a finite number"),
                            ({"action_low": [0.0, 6.0], "action_high": [1.0, 5.0]}, "action_low, action_high: each low must be below")]:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
            envs.make("rlfarm/Subprocess-v0", 2, command=BOX_SIM, obs_dim=2, action_dim=2, **kwargs)


CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "external_sim.yaml"


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["c", "python"])
def test_reference_simulators_train_to_the_target_through_the_ray_farm(sim, c_sim, tmp_path):
    command = json.dumps(c_sim if sim == "c" else PYTHON_SIM)
    proc = subprocess.run(
        [sys.executable, "-m", "rlfarm.experiments.cli", "train", str(CONFIG), "--run-dir", str(tmp_path / "run"),
         "--set", f"env.kwargs.command={command}", "--set", f"log.dir={tmp_path}"],
        capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["exit_reason"] == "target_return" and summary["solved"], summary


@pytest.mark.slow
def test_a_killed_runner_leaves_no_simulator_processes(c_sim):
    import ray

    from rlfarm import agents, envs
    from rlfarm.cluster import FarmConfig
    from rlfarm.cluster.ray_farm import RayFarm

    env_cfg = envs.EnvConfig(id="rlfarm/Subprocess-v0", envs_per_runner=8,
                             kwargs={"command": c_sim, "copies_per_process": 4, **CARTPOLE})
    farm = RayFarm(env_cfg, agents.PolicyConfig(hidden_sizes=[16]), agents.AlgoConfig(name="ppo", device="cpu"),
                   FarmConfig(mode="ray", num_runners=1, fragment_length=8), seed=0, total_env_steps=None)
    try:
        farm.iterate()
        runner_pid = farm.pool.pids()[0]
        sims = children(runner_pid)
        assert len(sims) == 2 and all(alive(pid) for pid in sims)
        os.kill(runner_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in sims) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in sims)
    finally:
        farm.close()
        if ray.is_initialized():
            ray.shutdown()
