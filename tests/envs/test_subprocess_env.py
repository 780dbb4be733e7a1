"""rlfarm/Subprocess-v0: the C and Python reference simulators match the built-in CartPole,
follow the conventions, and a program that crashes, hangs or garbles is restarted and counted."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs import conventions
from rlfarm.envs.cartpole import CartPoleBatched

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


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


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


@pytest.mark.parametrize("mode", ["crash", "hang", "garble"])
def test_a_misbehaving_program_is_killed_restarted_and_counted(mode, tmp_path):
    command = [sys.executable, FAULTY_SIM, mode, "30", str(tmp_path / "marker")]
    env = envs.make("rlfarm/Subprocess-v0", 8, command=command, copies_per_process=4,
                    step_timeout_s=0.5, **CARTPOLE)
    env.reset(seed=0)
    first_pids = env.pids()
    errors = 0
    for _ in range(60):  # the faulty incarnation misbehaves at its 30th reply
        obs, rewards, terminated, truncated, infos = env.step(np.zeros(8, np.int64))
        errors += infos.get("env_errors", 0)
        assert np.isfinite(obs).all()
    assert errors == 4 and env.restarts == 1  # one process's copies, once
    assert not alive(first_pids[0]) and env.pids()[1] == first_pids[1]
    pids = env.pids()
    env.close()
    assert not any(alive(pid) for pid in pids)


def test_bad_commands_and_spaces_are_config_errors(c_sim):
    with pytest.raises(ValueError, match="^command: cannot run 'no-such-simulator'"):
        envs.make("rlfarm/Subprocess-v0", 2, command=["no-such-simulator"], **CARTPOLE)
    with pytest.raises(ValueError, match=r"^command: the program declares protocol 1, \(obs_dim"):
        envs.make("rlfarm/Subprocess-v0", 2, command=c_sim, obs_dim=3, num_actions=2)
