"""process_cost.run_measured: wall time of the whole child, and the CPU of the child and of
a grandchild it does not wait for, against each process's own count of the CPU it burned."""
from __future__ import annotations

import json
import sys

from rlfarm.experiments.bench.process_cost import run_measured

# The child starts a grandchild, both burn CPU until their own clocks say 0.4 s, and the child
# reports the two figures; the grandchild outlives nothing (the child waits on a pipe, not on it).
BURN = """
import json, subprocess, sys, time
def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time()
if sys.argv[1] == "grandchild":
    print(burn(0.4), flush=True)
    time.sleep(0.6)  # stay alive past a reading of the sampler
else:
    grand = subprocess.Popen([sys.executable, "-c", sys.argv[2],
                              "grandchild", sys.argv[2]], stdout=subprocess.PIPE, text=True)
    own = burn(0.4)
    grand_cpu = float(grand.stdout.readline())
    print(json.dumps({"own": own, "grand": grand_cpu}), flush=True)
    grand.wait()
"""


def test_cpu_counts_the_child_and_its_descendants(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "w") as stream:
        cost = run_measured([sys.executable, "-c", BURN, "child", BURN], stdout=stream)
    assert cost["exit_code"] == 0
    burned = json.loads(out.read_text().strip().splitlines()[-1])
    expected = burned["own"] + burned["grand"]  # at least 0.8 s between them
    # Interpreter start-up adds CPU on top; the sampler may miss at most one interval of the grandchild.
    assert expected - 0.25 <= cost["cpu_core_s"] <= expected + 1.5, (cost, burned)
    assert cost["wall_s"] >= 0.4
    assert cost["joules"] is None or cost["joules"] >= 0


def test_exit_code_is_the_childs():
    assert run_measured([sys.executable, "-c", "raise SystemExit(3)"])["exit_code"] == 3
