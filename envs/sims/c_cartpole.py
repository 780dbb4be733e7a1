"""`python -m rlfarm.envs.sims.c_cartpole`: build cartpole_sim.c with the system's `cc` (once,
cached by the source's hash) and replace this process with it, so rlfarm/Subprocess-v0 talks
to the C program directly. `build()` alone returns the binary's path."""
from __future__ import annotations

import os
import sys

from rlfarm.envs.sims.compile import build_cached

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cartpole_sim.c")


def build(cache_dir: str | None = None) -> str:
    """Path of the compiled simulator; raises FileNotFoundError where there is no `cc`."""
    return build_cached(SOURCE, os.environ.get("CC", "cc"), "no C compiler", cache_dir)


if __name__ == "__main__":
    path = build()
    os.execv(path, [path, *sys.argv[1:]])
