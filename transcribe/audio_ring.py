"""A growable window of recent audio addressed by absolute sample position.

Appends and trims are amortised O(1): the held audio moves only when the free space at the end
runs out (the first version copied up to 10 s of audio on every 20 ms frame). One owner appends
and trims; reads may come from any thread (a decode worker extending a waiting partial's clip).
"""

from __future__ import annotations

import threading

import numpy as np


class AudioRing:
    """Holds float32 samples from `start` to `end`; the owner trims what it no longer needs."""

    def __init__(self, initial_capacity: int = 16_000) -> None:
        self._buffer = np.zeros(max(1, initial_capacity), dtype=np.float32)
        self._lo = 0  # index in _buffer of the sample at `start`
        self._hi = 0  # index in _buffer one past the last sample held
        self.start = 0  # absolute position of _buffer[_lo]
        self._lock = threading.Lock()

    @property
    def end(self) -> int:
        return self.start + self._hi - self._lo

    def append(self, samples: np.ndarray) -> None:
        n = len(samples)
        with self._lock:
            if self._hi + n > len(self._buffer):
                self._make_room(n)
            self._buffer[self._hi : self._hi + n] = samples
            self._hi += n

    def slice(self, start: int, end: int) -> np.ndarray:
        """A copy of [start, end); positions before the held window read as silence."""
        with self._lock:
            lo, hi = max(start, self.start), min(end, self.end)
            out = np.zeros(max(0, end - start), dtype=np.float32)
            if hi > lo:
                base = self._lo - self.start
                out[lo - start : hi - start] = self._buffer[base + lo : base + hi]
            return out

    def extend(self, clip: np.ndarray, clip_end: int, until: int) -> tuple[np.ndarray, int]:
        """`clip` (ending at `clip_end`) followed by the audio held after it up to position
        `until`; and the new end. Unchanged when that audio is no longer held."""
        with self._lock:
            end = min(self.end, until)
            if end <= clip_end or clip_end < self.start:
                return clip, clip_end
            base = self._lo - self.start
            return np.concatenate([clip, self._buffer[base + clip_end : base + end]]), end

    def trim_before(self, position: int) -> None:
        with self._lock:
            cut = min(max(0, position - self.start), self._hi - self._lo)
            self._lo += cut
            self.start += cut

    def _make_room(self, n: int) -> None:
        held = self._hi - self._lo
        capacity = len(self._buffer)
        while capacity < 2 * (held + n):  # keep half free so moves stay rare
            capacity *= 2
        buffer = self._buffer if capacity == len(self._buffer) else np.zeros(capacity, dtype=np.float32)
        buffer[:held] = self._buffer[self._lo : self._hi]
        self._buffer, self._lo, self._hi = buffer, 0, held
