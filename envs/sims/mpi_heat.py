"""`python -m rlfarm.envs.sims.mpi_heat [--ranks R] [N K]`: build heat1d_mpi.c with `mpicc`
(once, cached by the source's hash) and replace this process with `mpirun -n R` running it,
so rlfarm/Subprocess-v0's program is the MPI launcher itself: one copy set = one MPI job,
rank 0 on the bridge's pipes. `build()` and `launcher()` give the pieces for a command of
your own (`["mpirun", "-n", "2", "./heat1d_mpi"]`)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heat1d_mpi.c")


def build(cache_dir: str | None = None) -> str:
    """Path of the compiled simulator; raises FileNotFoundError where there is no `mpicc`."""
    compiler = os.environ.get("MPICC", "mpicc")
    if shutil.which(compiler) is None:
        raise FileNotFoundError(f"no MPI C compiler: {compiler!r} is not on PATH (Debian: openmpi-bin libopenmpi-dev)")
    with open(SOURCE, "rb") as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()[:16]
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "rlfarm", "sims")
    binary = os.path.join(cache_dir, f"heat1d_mpi-{digest}")
    if not os.path.exists(binary):
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{binary}.{os.getpid()}.tmp"  # concurrent runners: each builds aside, then renames
        subprocess.run([compiler, "-O2", "-o", tmp, SOURCE, "-lm"], check=True)
        os.replace(tmp, binary)
    return binary


def launcher(ranks: int) -> list[str]:
    """`mpirun -n RANKS` with what a runner's machine needs: --oversubscribe (a runner may
    hold fewer cores than ranks), and --allow-run-as-root where the runner is root
    (containers); Open MPI refuses root without it."""
    command = ["mpirun", "-n", str(ranks), "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")
    return command


if __name__ == "__main__":
    args = sys.argv[1:]
    ranks = 2
    if args[:1] == ["--ranks"]:
        ranks, args = int(args[1]), args[2:]
    path = build()
    command = [*launcher(ranks), path, *args]
    os.execvp(command[0], command)
