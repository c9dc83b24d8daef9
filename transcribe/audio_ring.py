"""A growable window of recent audio addressed by absolute sample position."""

from __future__ import annotations

import numpy as np


class AudioRing:
    """Holds float32 samples from `start` to `end`; the owner trims what it no longer needs."""

    def __init__(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)
        self.start = 0  # absolute position of _buffer[0]

    @property
    def end(self) -> int:
        return self.start + len(self._buffer)

    def append(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])

    def slice(self, start: int, end: int) -> np.ndarray:
        """A copy of [start, end); positions before the held window read as silence."""
        lo, hi = max(start, self.start), min(end, self.end)
        out = np.zeros(max(0, end - start), dtype=np.float32)
        if hi > lo:
            out[lo - start : hi - start] = self._buffer[lo - self.start : hi - self.start]
        return out

    def trim_before(self, position: int) -> None:
        cut = min(max(0, position - self.start), len(self._buffer))
        if cut:
            self._buffer = self._buffer[cut:].copy()
            self.start += cut
