"""rlfarm/Subprocess-v0 with the simulator as a server (`transport: unix | tcp`, loopback only):
the same trajectories as the built-in CartPole, a server killed mid-run is restarted and
counted, bad transport settings are one-line config errors, and it trains through the farm."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlfarm import envs
from rlfarm.envs.cartpole import CartPoleBatched

from .conftest import alive

SERVER_SIM = ["{python}", "-m", "rlfarm.envs.sims.cartpole_sim", "--listen", "{address}"]
CARTPOLE = {"obs_dim": 4, "num_actions": 2}
CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "external_sim.yaml"




@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_server_simulator_matches_the_builtin_cartpole(transport):
    env = envs.make("rlfarm/Subprocess-v0", 6, command=SERVER_SIM, copies_per_process=4,
                    transport=transport, **CARTPOLE)
    ref = CartPoleBatched(6)
    np.testing.assert_array_equal(env.reset(seed=3)[0], ref.reset(seed=3)[0])
    rng = np.random.default_rng(0)
    for _ in range(100):  # several episodes: ends and autoresets line up too
        actions = rng.integers(0, 2, 6)
        got, want = env.step(actions), ref.step(actions)
        np.testing.assert_allclose(got[0], want[0], atol=1e-4)
        for x, y in zip(got[1:4], want[1:4]):
            np.testing.assert_array_equal(x, y)
    addresses = [proc.server.address for proc in env.procs]
    assert len(set(addresses)) == 2
    assert all(a.startswith("127.0.0.1:") if transport == "tcp" else a.endswith("/sim.sock") for a in addresses)
    pids = env.pids()
    env.close()
    assert not any(alive(pid) for pid in pids)
    if transport == "unix":  # the private socket folders go with their servers
        assert not any(os.path.exists(os.path.dirname(a)) for a in addresses)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_server_that_dies_is_restarted_and_counted(transport):
    env = envs.make("rlfarm/Subprocess-v0", 8, command=SERVER_SIM, copies_per_process=4,
                    transport=transport, step_timeout_s=2.0, **CARTPOLE)
    env.reset(seed=0)
    first = env.pids()
    errors = 0
    for t in range(20):
        if t == 5:
            os.kill(first[0], signal.SIGKILL)
        obs, rewards, terminated, truncated, infos = env.step(np.zeros(8, np.int64))
        errors += infos.get("env_errors", 0)
        assert np.isfinite(obs).all()
    assert errors == 4 and env.restarts == 1  # the dead server's copies, once
    assert env.pids()[0] != first[0] and env.pids()[1] == first[1]
    env.close()


def test_transport_settings_are_config_errors():
    with pytest.raises(ValueError, match="^transport: expected one of pipes, unix, tcp, got 'udp'"):
        envs.make("rlfarm/Subprocess-v0", 2, command=SERVER_SIM, transport="udp", **CARTPOLE)
    with pytest.raises(ValueError, match=r"^command: with transport 'tcp' it must contain '\{address\}'"):
        envs.make("rlfarm/Subprocess-v0", 2, command=["{python}", "-m", "rlfarm.envs.sims.cartpole_sim"],
                  transport="tcp", **CARTPOLE)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_server_simulator_trains_to_the_target_through_the_ray_farm(transport, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlfarm.experiments.cli", "train", str(CONFIG), "--run-dir", str(tmp_path / "run"),
         "--set", f"env.kwargs.command={json.dumps(SERVER_SIM)}", "--set", f"env.kwargs.transport={transport}",
         "--set", f"log.dir={tmp_path}"],
        capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["exit_reason"] == "target_return" and summary["solved"], summary
