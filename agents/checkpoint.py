"""One-file checkpoints: model, optimizer, normalizer, counters, RNG states and configs.

The file holds only tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: no pickled code runs. Writing goes to a temporary file that
replaces the target atomically, so a crash never leaves half a checkpoint. Loading validates
everything (format, spaces, model sizes, optimizer) before touching the learner.
"""
from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "rlfarm-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the learner: "checkpoint PATH: reason",
    with a plain reason ("truncated", "not an rlfarm checkpoint", "from a different model: ...")."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(str(path), reason)  # both in args, so the error pickles (Ray actors)
        self.path, self.reason = str(path), reason

    def __str__(self) -> str:
        return f"checkpoint {self.path}: {self.reason}"


def _numpy_rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_rng_state(state: dict) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"],
                         state["has_gauss"], state["cached_gaussian"]))


def _non_finite_tensors(tree: Any, where: str = "") -> list[str]:
    """Names of the floating-point tensors in a state tree that hold NaN or Inf."""
    if isinstance(tree, torch.Tensor):
        return [where] if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return [name for key, value in items for name in _non_finite_tensors(value, f"{where}.{key}".lstrip("."))]


def save_checkpoint(path, learner, extra: dict | None = None) -> Path:
    """Write `learner.state_dict()`, `extra` (e.g. env steps, wall time) and the global RNG
    states to `path` atomically. `extra` must hold plain data (numbers, strings, lists, dicts,
    tensors). Returns the path."""
    path = Path(path)
    state = learner.state_dict()
    bad = _non_finite_tensors(state)
    if bad:
        raise CheckpointError(path, f"not written: {', '.join(bad[:3])} hold NaN or Inf "
                                    "(the last finite checkpoint stays the newest)")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "learner": state,
        "extra": dict(extra or {}),
        "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    # Serialised in memory first: torch's zip writer turns a failed write (a full disk) into
    # "unexpected pos ..."; a plain write raises OSError with its errno, named with the path.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(buffer.getbuffer())
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException as err:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        if isinstance(err, OSError) and err.errno:  # named with the checkpoint, not the temp file
            raise OSError(err.errno, os.strerror(err.errno), str(path)) from err
        raise
    return path


def read_checkpoint(path) -> dict:
    """The checkpoint's contents (weights_only), or CheckpointError saying why it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch's own words would advise weights_only=False: never
        raise CheckpointError(path, _unreadable_reason(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, "not an rlfarm checkpoint (a torch file with other contents)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(path, f"format version {payload.get('format_version')} "
                                    f"is not supported (expected {FORMAT_VERSION})")
    for key in ("learner", "extra", "rng"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(path, f"damaged: missing {key!r} section")
    return payload


def _unreadable_reason(path: Path) -> str:
    """Why torch could not load `path`, in plain words. A torch file is a zip archive, so the
    archive itself tells a cut-off write from a file that never was a checkpoint."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(4)
        if not head:
            return "empty (truncated)"
        if head != b"PK\x03\x04":
            return "not an rlfarm checkpoint (not a torch file)"
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        return "truncated"
    except OSError as err:
        return f"cannot be read ({err.strerror or type(err).__name__})"
    if damaged:
        return f"damaged ({damaged} fails its checksum)"
    return "not an rlfarm checkpoint (it holds pickled Python objects, which rlfarm never writes)"


def load_checkpoint(path, learner, restore_rng: bool = True) -> dict:
    """Load `path` into `learner` and return the `extra` dict that was saved with it.

    Raises CheckpointError (and leaves the learner untouched) when the file is corrupt or was
    written for other observation/action spaces, another algorithm or other model sizes.
    """
    payload = read_checkpoint(path)
    try:
        learner.check_state_dict(payload["learner"])
    except ValueError as err:
        raise CheckpointError(path, f"from a different model: {err}") from None
    except Exception as err:  # a malformed section (missing key, wrong type)
        raise CheckpointError(path, f"damaged learner state ({type(err).__name__}: {err})") from None
    try:
        learner.load_state_dict(payload["learner"])
    except Exception as err:  # load_state_dict restored the learner's previous state
        raise CheckpointError(path, f"loading failed, learner left unchanged ({err})") from None
    if restore_rng:
        rng = payload["rng"]
        torch.set_rng_state(rng["torch"])
        _set_numpy_rng_state(rng["numpy"])
        if rng.get("cuda") and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
    return payload["extra"]
