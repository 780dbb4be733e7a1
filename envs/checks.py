"""Input checks shared by the batched envs and the foreign-env adapter.

Every failure is a ValueError that names the argument, says what was expected and what came,
so a runner or a config error reads as one line.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces


def check_int(name: str, value, low: int) -> int:
    """``value`` as an int >= ``low`` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


def check_number(name: str, value, *, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 when ``positive``); bools and strings refused."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and np.isfinite(value) and (value > 0 or not positive)
    if not ok:
        raise ValueError(f"{name}: expected a {'positive' if positive else 'finite'} number, got {value!r}")
    return float(value)


class ActionChecker:
    """Validates a batch of actions for ``num_envs`` copies of ``space`` (Discrete or Box).

    A Discrete action must be an integer array of shape [N] within the space; it is returned
    as given. A Box action must be a numeric array of shape [N, *shape] without NaN; it is
    returned clipped to the bounds, as float32. Anything else raises ValueError.
    """

    def __init__(self, space: spaces.Space, num_envs: int):
        if isinstance(space, spaces.Discrete):
            self.discrete = True
            self.start, self.n = int(space.start), int(space.n)
            self.shape: tuple[int, ...] = (num_envs,)
            self.expected = (f"an integer array of shape {self.shape} with values in "
                             f"[{self.start}, {self.start + self.n - 1}]")
        elif isinstance(space, spaces.Box):
            self.discrete = False
            self.shape = (num_envs,) + space.shape
            self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
            self.expected = f"a float array of shape {self.shape} without NaN"
        else:
            raise TypeError(f"ActionChecker: unsupported action space {space}")

    @staticmethod
    def supports(space: spaces.Space) -> bool:
        return isinstance(space, (spaces.Discrete, spaces.Box))

    def _error(self, actions: np.ndarray, what: str) -> ValueError:
        return ValueError(f"actions: expected {self.expected}, got {what} "
                          f"(dtype {actions.dtype}, shape {actions.shape})")

    def __call__(self, actions) -> np.ndarray:
        if not isinstance(actions, np.ndarray):
            actions = np.asarray(actions)
        if self.discrete:
            return self._check_discrete(actions)
        return self._check_box(actions)

    def _check_discrete(self, actions: np.ndarray) -> np.ndarray:
        if actions.shape != self.shape:
            raise self._error(actions, "an array of the wrong shape")
        if actions.dtype.kind not in "iu":
            raise self._error(actions, "an array of the wrong dtype")
        shifted = actions - self.start if self.start else actions
        # One unsigned reduction finds both negative and too-large actions.
        if shifted.view(np.dtype(f"u{shifted.dtype.itemsize}")).max() >= self.n:
            worst = actions.min() if shifted.min() < 0 else actions.max()
            raise self._error(actions, f"the value {worst}")
        return actions

    def _check_box(self, actions: np.ndarray) -> np.ndarray:
        if actions.shape != self.shape:
            raise self._error(actions, "an array of the wrong shape")
        if actions.dtype.kind not in "fiu":
            raise self._error(actions, "an array of the wrong dtype")
        clipped = np.clip(actions, self.low, self.high, dtype=np.float32, casting="unsafe")
        # The sum is one pass and NaN-sticky, so the elementwise scan runs only on a NaN batch.
        if np.isnan(clipped.sum()) and np.isnan(clipped).any():
            raise self._error(actions, "NaN")
        return clipped
