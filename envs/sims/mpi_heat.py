"""`python -m rlfarm.envs.sims.mpi_heat [--ranks R] [N K]`: build heat1d_mpi.c with `mpicc`
(once, cached by the source's hash) and replace this process with `mpirun -n R` running it,
so rlfarm/Subprocess-v0's program is the MPI launcher itself: one copy set = one MPI job,
rank 0 on the bridge's pipes. `build()` and `launcher()` give the pieces for a command of
your own (`["mpirun", "-n", "2", "./heat1d_mpi"]`)."""
from __future__ import annotations

import os
import sys

from rlfarm.envs.sims.compile import build_cached

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heat1d_mpi.c")


def build(cache_dir: str | None = None) -> str:
    """Path of the compiled simulator; raises FileNotFoundError where there is no `mpicc`."""
    return build_cached(SOURCE, os.environ.get("MPICC", "mpicc"), "no MPI C compiler (Debian: openmpi-bin libopenmpi-dev)", cache_dir)


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
