"""Compile a reference simulator's C source once per source version, into a per-user cache.

Runners on one machine may all ask at once: each compiles aside and renames, so a reader
never sees half a binary, and the name carries the source's hash, so an edited source builds
anew instead of running a stale binary.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess


def build_cached(source: str, compiler: str, missing_hint: str, cache_dir: str | None = None) -> str:
    """Path of `source` compiled with `compiler -O2 ... -lm`; FileNotFoundError naming
    `missing_hint` where the compiler is not on PATH."""
    if shutil.which(compiler) is None:
        raise FileNotFoundError(f"{missing_hint}: {compiler!r} is not on PATH")
    with open(source, "rb") as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()[:16]
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "rlfarm", "sims")
    stem = os.path.splitext(os.path.basename(source))[0]
    binary = os.path.join(cache_dir, f"{stem}-{digest}")
    if not os.path.exists(binary):
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{binary}.{os.getpid()}.tmp"
        subprocess.run([compiler, "-O2", "-o", tmp, source, "-lm"], check=True)
        os.replace(tmp, binary)
    return binary
