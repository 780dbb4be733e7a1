"""The farm bench's CPU accounting: the process tree and its CPU seconds, from /proc."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rlfarm.experiments.bench.proc_cpu import SessionCpu, _descendants, cpu_seconds

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")

BUSY = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)"


@pytest.mark.slow
def test_a_busy_child_is_in_the_tree_and_its_cpu_counts():
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        assert str(child.pid) in _descendants(os.getpid())
        deadline = time.monotonic() + 20
        while cpu_seconds([str(child.pid)])[str(child.pid)] < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0.4 <= cpu_seconds([str(child.pid)])[str(child.pid)] < 5.0
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds([str(child.pid)]) == {}  # gone: left out, not an error


def test_no_window_without_a_local_raylet_below_this_process():
    code = "from rlfarm.experiments.bench.proc_cpu import SessionCpu; print(SessionCpu.start())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(__file__))
    assert out.stdout.strip() == "None"


def test_a_window_reports_the_cpu_used_inside_it():
    window = SessionCpu(pids=[str(os.getpid())], at_start=cpu_seconds([str(os.getpid())]))
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    used = window.stop()
    assert 0.25 <= used[str(os.getpid())] < 3.0
