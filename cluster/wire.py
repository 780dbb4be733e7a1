"""How a Fragment crosses Ray's object store: arrays over 1 MiB travel as 1 MiB chunks.

Ray writes each numpy buffer of an object into the store with one memcpy, except a buffer
over 1 MiB, which it copies with six threads that it creates for that one copy and joins
(MEMCOPY_THREADS in Ray's serialization code, fixed when Ray is built). A 64-step CartPole
fragment's obs (65 x 1024 x 4 float32) is just over 1 MiB, so every fragment spawned six
threads. On a machine where every core runs a runner, those threads preempt the other
runners, and each put costs more CPU than a plain memcpy would (docs/results/performance.md has the
measurements).

Registered by each runner actor (`register`), an array over `CHUNK_BYTES` is sent as
consecutive 1 MiB slices of its bytes, each copied with one memcpy. Ray places out-of-band
buffers one after the other at 64-byte alignment, and 1 MiB is a multiple of 64, so on arrival
the chunks lie back to back in the object's buffer, and the array comes back as a read-only
view over them without a copy, as an unchunked array does. Where they do not (a pickle that
copied them), they are joined with one copy. The receiver needs no registration: the pickle
names `_join_array` and `_rebuild_fragment` by module.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import ray

from rlfarm.agents.fragment import Fragment

CHUNK_BYTES = 1 << 20  # Ray's parallel-copy threshold; a copy must be over it to go parallel


def register() -> None:
    """Serialize Fragments with chunked arrays in this process (call it where fragments are
    returned or put: the runner actors)."""
    ray.util.register_serializer(Fragment, serializer=_fragment_fields, deserializer=_rebuild_fragment)


def _fragment_fields(fragment: Fragment) -> dict[str, Any]:
    return {field.name: split_array(value) if isinstance(value := getattr(fragment, field.name), np.ndarray)
            else value for field in dataclasses.fields(fragment)}


def _rebuild_fragment(fields: dict[str, Any]) -> Fragment:
    return Fragment(**fields)


class _Chunked:
    """An array as the pickle carries it: its shape, dtype and the byte chunks; unpickles
    into the array itself (`_join_array`)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, chunks: list[np.ndarray]):
        self.shape, self.dtype, self.chunks = shape, dtype, chunks

    def __reduce__(self) -> tuple:
        return _join_array, (self.shape, self.dtype, self.chunks)


def split_array(array: np.ndarray) -> np.ndarray | _Chunked:
    """`array` itself when it is at most CHUNK_BYTES, else its bytes in CHUNK_BYTES slices."""
    if array.nbytes <= CHUNK_BYTES:
        return array
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    chunks = [flat[start:start + CHUNK_BYTES] for start in range(0, flat.size, CHUNK_BYTES)]
    return _Chunked(array.shape, array.dtype, chunks)


def _join_array(shape: tuple[int, ...], dtype: np.dtype, chunks: list[np.ndarray]) -> np.ndarray:
    flat = np.asarray(_Span(chunks)) if _back_to_back(chunks) else np.concatenate(chunks)
    return flat.view(dtype).reshape(shape)


def _back_to_back(chunks: list[np.ndarray]) -> bool:
    """Each chunk starts where the one before it ends."""
    return all(after.ctypes.data == before.ctypes.data + before.nbytes
               for before, after in zip(chunks, chunks[1:]))


class _Span:
    """Back-to-back chunks as one read-only byte array, without a copy. It holds every chunk,
    so each byte of the span stays alive whichever buffer holds it."""

    def __init__(self, chunks: list[np.ndarray]):
        self.chunks = chunks
        self.__array_interface__ = {"data": (chunks[0].ctypes.data, True), "typestr": "|u1",
                                    "shape": (sum(chunk.nbytes for chunk in chunks),), "version": 3}
