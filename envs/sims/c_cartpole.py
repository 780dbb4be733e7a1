"""`python -m rlfarm.envs.sims.c_cartpole`: build cartpole_sim.c with the system's `cc` (once,
cached by the source's hash) and replace this process with it, so rlfarm/Subprocess-v0 talks
to the C program directly. `build()` alone returns the binary's path."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cartpole_sim.c")


def build(cache_dir: str | None = None) -> str:
    """Path of the compiled simulator; raises FileNotFoundError where there is no `cc`."""
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise FileNotFoundError(f"no C compiler: {compiler!r} is not on PATH")
    with open(SOURCE, "rb") as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()[:16]
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "rlfarm", "sims")
    binary = os.path.join(cache_dir, f"cartpole_sim-{digest}")
    if not os.path.exists(binary):
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{binary}.{os.getpid()}.tmp"  # concurrent runners: each builds aside, then renames
        subprocess.run([compiler, "-O2", "-o", tmp, SOURCE, "-lm"], check=True)
        os.replace(tmp, binary)
    return binary


if __name__ == "__main__":
    path = build()
    os.execv(path, [path, *sys.argv[1:]])
