"""`rlfarm`'s process set-up: numpy's BLAS threads."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rlfarm.experiments.cli import limit_blas_threads

# In a fresh process: run the CLI, then ask the OpenBLAS that numpy loaded how many threads it uses.
PROBE = """
import ctypes
from rlfarm.experiments.cli import main
main(["envs"])
path = next((line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line), None)
names = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")
lib = ctypes.CDLL(path) if path else None
getter = next((getattr(lib, name) for name in names if lib is not None and hasattr(lib, name)), None)
print("BLAS_THREADS", getter() if getter else "unknown")
"""


def test_blas_threads_default_to_one_and_keep_the_users_choice() -> None:
    environ: dict[str, str] = {}
    limit_blas_threads(environ)
    assert environ == {"OPENBLAS_NUM_THREADS": "1"}
    for chosen in ({"OPENBLAS_NUM_THREADS": "4"}, {"OMP_NUM_THREADS": "3"}):
        environ = dict(chosen)
        limit_blas_threads(environ)
        assert environ == chosen


def _blas_threads(**env_vars: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", PROBE], env={**env, **env_vars},
                          capture_output=True, text=True, timeout=120, check=True)
    return proc.stdout.rsplit("BLAS_THREADS", 1)[1].strip()


@pytest.mark.slow
def test_the_cli_runs_numpy_blas_on_one_thread() -> None:
    threads = _blas_threads()
    if threads == "unknown":
        pytest.skip("this numpy is not built on OpenBLAS")
    assert threads == "1"
    if (os.cpu_count() or 1) > 1:  # the user's own count wins
        assert _blas_threads(OPENBLAS_NUM_THREADS="2") == "2"
