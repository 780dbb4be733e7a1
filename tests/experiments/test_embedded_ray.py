"""The embedded Ray of `rlfarm train` listens on loopback only and dies with its driver
(issue 19, cases 4 and 8): during a real Ray-mode run, every TCP socket that the driver's
process tree listens on is bound to 127.0.0.1 (as `ss -ltnp` shows them); after the driver is
SIGKILLed, none of those processes is left after a bounded time."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rlfarm.cluster.reaper import SNAPSHOT_INTERVAL_S, TERM_GRACE_S, descendants, running

REAP_BOUND_S = SNAPSHOT_INTERVAL_S + TERM_GRACE_S + 10.0
"""The reaper's bound plus slack for a loaded 2-core machine."""


def _listening(pids: set[int]) -> list[str]:
    """Local addresses of the listening TCP sockets that belong to `pids`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines()
            if any(int(pid) in pids for pid in re.findall(r"pid=(\d+)", line))]


def _wait_for(path: str, text: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in open(path, encoding="utf-8", errors="replace").read():
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"no {text!r} from the run: {open(path, encoding='utf-8', errors='replace').read()[-3000:]}")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ss") is None or not os.path.isdir("/proc"), reason="needs ss and /proc")
def test_embedded_ray_listens_on_loopback_and_dies_with_a_sigkilled_driver(write_config, tmp_path):
    config = write_config({"farm": {"mode": "ray"}, "stop": {"env_steps": 0, "wall_s": 300}})
    log = tmp_path / "train.log"
    with open(log, "w") as stream:
        driver = subprocess.Popen([sys.executable, "-m", "rlfarm.experiments.cli", "train", str(config)],
                                  stdout=stream, stderr=subprocess.STDOUT)
    try:
        _wait_for(str(log), "rlfarm train: placement", driver, timeout_s=120)
        tree = descendants(driver.pid)
        addresses = _listening(set(tree) | {driver.pid})
        assert addresses, "the Ray processes listen on nothing: the filter by pid is broken"
        for address in addresses:
            assert address.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]"), addresses
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + REAP_BOUND_S
        left = set(tree)
        while left and time.monotonic() < deadline:
            left = {pid for pid in left if running(pid, tree[pid])}
            time.sleep(0.2)
        assert not left, f"left behind {REAP_BOUND_S:.0f} s after the driver's SIGKILL: {_names(left)}"
    finally:
        if driver.poll() is None:
            driver.kill()

def _names(pids: set[int]) -> list[str]:
    names = []
    for pid in pids:
        try:
            names.append(f"{pid} {open(f'/proc/{pid}/comm').read().strip()}")
        except OSError:
            names.append(str(pid))
    return names
