"""Per-copy random streams without a Python loop over copies.

Each copy of a batched env draws its reset noise from a counter-based generator:
the splitmix64 sequence started at a key hashed from (seed, runner_index, copy index),
computed on uint64 arrays for all resetting copies at once. So

- copy i's stream depends only on (seed, runner_index, i), not on how many copies the
  env has, nor on when the other copies reset;
- the same seed gives bit-identical draws, and a different seed or runner index gives
  different ones (the key comes from ``numpy.random.SeedSequence``, which mixes well);
- resetting k copies costs a handful of vectorized integer operations on k x d arrays.

splitmix64 is the finalizer of Steele, Lea & Flood, "Fast splittable pseudorandom number
generators" (OOPSLA 2014); it passes BigCrush when fed a counter.
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 2.0 ** -53


def splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, in place on a uint64 array (wrapping arithmetic)."""
    z ^= z >> _S30
    z *= _MIX1
    z ^= z >> _S27
    z *= _MIX2
    z ^= z >> _S31
    return z


def runner_seed_sequence(seed: int | np.random.SeedSequence | None, runner_index: int) -> np.random.SeedSequence:
    """The SeedSequence of one runner: ``seed`` (an int, a SeedSequence, or None for OS
    entropy) with ``runner_index`` appended to its spawn key, so runners never share a stream."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + (runner_index,))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed: expected a non-negative int, a SeedSequence or None, got {seed!r}")
    return np.random.SeedSequence(None if seed is None else int(seed), spawn_key=(runner_index,))


def stream_key(seed: int | np.random.SeedSequence | None, runner_index: int) -> np.ndarray:
    """Two uint64 words that name the streams of one runner's env for one seed."""
    return runner_seed_sequence(seed, runner_index).generate_state(2, np.uint64)


class CopyStreams:
    """Independent reproducible random streams for the copies of one batched env.

    Copy i's stream is the splitmix64 sequence that starts at a key hashed from
    (seed, runner_index, i); each reset of the copy consumes the next ``draws`` values.
    """

    def __init__(self, num_copies: int):
        self.num_copies = num_copies
        self._position = np.zeros(num_copies, dtype=np.uint64)
        self.seed(None, 0)

    def seed(self, seed, runner_index: int = 0) -> None:
        """Restart every copy's stream from (seed, runner_index, copy index)."""
        key = stream_key(seed, runner_index)
        with np.errstate(over="ignore"):
            keys = np.arange(self.num_copies, dtype=np.uint64)
            keys *= _GOLDEN
            keys += key[0]
            splitmix64(keys)
            keys ^= key[1]
            splitmix64(keys)
        self._position[:] = keys

    def bits(self, copies: np.ndarray, draws: int) -> np.ndarray:
        """uint64 [len(copies), draws]: the next ``draws`` values of each listed copy's stream."""
        start = self._position[copies]
        with np.errstate(over="ignore"):
            self._position[copies] = start + np.uint64(draws) * _GOLDEN
            steps = np.arange(1, draws + 1, dtype=np.uint64) * _GOLDEN
            return splitmix64(start[:, None] + steps)

    def uniform(self, copies: np.ndarray, draws: int, low=0.0, high=1.0) -> np.ndarray:
        """float64 [len(copies), draws] uniform in [low, high), the next draws of each copy."""
        unit = (self.bits(copies, draws) >> _S11).astype(np.float64)
        unit *= _TO_UNIT * (high - low)
        if low != 0.0:
            unit += low
        return unit

    def state(self) -> np.ndarray:
        """Every copy's stream position (for tests and checkpoints)."""
        return self._position.copy()


def box_muller(unit: np.ndarray) -> np.ndarray:
    """Standard normals from uniforms in [0, 1): [k, 2m] uniforms give [k, 2m] normals."""
    half = unit.shape[-1] // 2
    radius = np.sqrt(-2.0 * np.log1p(-unit[..., :half]))  # 1 - u lies in (0, 1]
    angle = 2.0 * np.pi * unit[..., half:2 * half]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
