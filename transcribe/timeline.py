"""Where a leg's frames sit in its audio, and when each position was captured and received.

Positions are 16 kHz samples since the start of the leg, from each frame's offset_samples (not
arrival order), so that re-reading a call places every frame, and so every turn, identically.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

RATE_HZ = 16_000


@dataclass(frozen=True, slots=True)
class Placement:
    pad_samples: int  # silence to insert before the frame (a gap in the leg)
    skip_samples: int  # samples at the frame's start already sent (an overlap or a duplicate)


@dataclass(frozen=True, slots=True)
class _Anchor:
    start: int
    end: int
    captured_at: float
    received_at: float


class LegTimeline:
    """Tracks the next expected position of one leg and recent capture/receive times."""

    def __init__(self, next_position: int = 0, max_anchors: int = 1_000) -> None:
        self.next_position = next_position
        self._anchors: deque[_Anchor] = deque(maxlen=max_anchors)  # ~20 s of 20 ms frames

    def place(self, position: int, num_samples: int) -> Placement:
        """Where a frame at `position` goes relative to what was already sent."""
        if position >= self.next_position:
            return Placement(position - self.next_position, 0)
        return Placement(0, min(num_samples, self.next_position - position))

    def advance(self, position: int, num_samples: int, captured_at: float, received_at: float) -> None:
        end = position + num_samples
        if end > self.next_position:
            self._anchors.append(_Anchor(position, end, captured_at, received_at))
            self.next_position = end

    def times_at(self, position: int) -> tuple[float, float]:
        """(captured_at, received_at) of the sample at `position`; extrapolated outside anchors."""
        if not self._anchors:
            return 0.0, 0.0
        for anchor in reversed(self._anchors):
            if anchor.start <= position or anchor is self._anchors[0]:
                offset_s = (position - anchor.start) / RATE_HZ
                return anchor.captured_at + offset_s, anchor.received_at
        raise AssertionError("unreachable")
