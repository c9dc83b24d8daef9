"""Which offset is safe to commit per partition: the lowest offset an open call still needs.

What a call still needs from its partition, after a crash, is the audio its finals do not cover
yet: per leg stream, the frames fed to it since the end of its last final (the turn in flight,
or silence since), and, while a call is being closed, its call.ended. The committed offset is
the lowest of those (or the next record after the last one handled), so a worker that takes the
partition over reads the turn in flight, not the call so far: the cost of a takeover does not
grow with the call's length. The call.started records before that offset are not read again: a
new owner opens those calls from the call.started the transcriber emitted on the transcript
topic (resume.py), and skips the frames its finals already cover. Before the commit the producer
is flushed, so every final and call.started that let the offset pass is on the broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

# A stream's uncovered frames are kept one entry a frame for the newest EXACT_FRAMES_MAX (60 s of
# 20 ms frames); older ones (a leg silent for long: a customer on hold) are merged into entries of
# BUCKET_FRAMES frames (1 s), which stay until a final covers their last frame. So memory is about
# 1/50 of a frame a frame, and the commit at most one bucket earlier than exact (safe: earlier only
# re-reads more).
EXACT_FRAMES_MAX = 3_000
BUCKET_FRAMES = 50
# An entry: (offset of its first frame, first frame's start sample, rate, last frame's start sample)
_Entry = tuple[int, int, int, int]


class _Stream:
    """One leg stream's frames not covered by a final: `merged` buckets first, then one a frame."""

    __slots__ = ("partition", "frames", "merged")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.frames: deque[_Entry] = deque()
        self.merged = 0  # how many of the first entries are buckets

    def add(self, entry: _Entry) -> None:
        self.frames.append(entry)
        if len(self.frames) - self.merged > EXACT_FRAMES_MAX:
            self._merge_oldest()

    def cover(self, end_ms: int) -> None:
        """Drop the entries whose last frame starts before `end_ms`."""
        frames = self.frames
        while frames and frames[0][3] * 1000 < end_ms * frames[0][2]:
            frames.popleft()
            self.merged = max(0, self.merged - 1)

    def _merge_oldest(self) -> None:
        buckets = [self.frames.popleft() for _ in range(self.merged)]
        oldest = [self.frames.popleft() for _ in range(EXACT_FRAMES_MAX // 2)]
        for i in range(0, len(oldest), BUCKET_FRAMES):
            bucket = oldest[i : i + BUCKET_FRAMES]
            buckets.append((bucket[0][0], bucket[0][1], bucket[0][2], bucket[-1][1]))
        self.merged = len(buckets)
        self.frames.extendleft(reversed(buckets))


class CommitWatermark:
    """Pure bookkeeping; offsets are Kafka offsets, commits are "next offset to read"."""

    def __init__(self, *, pin_call_starts: bool = False) -> None:
        # True: nothing opens a call but its audio call.started (no transcript topic read back on a
        # takeover), so the commit also stays at the oldest open call's call.started.
        self.pin_call_starts = pin_call_starts
        self._open: dict[int, dict[str, int]] = {}  # partition -> call_id -> offset of call.started
        self._consumed: dict[int, int] = {}  # partition -> next offset after the last record handled
        self._committed: dict[int, int] = {}
        self._uncovered: dict[Hashable, _Stream] = {}  # stream -> its frames not covered by a final
        self._ending: dict[int, dict[str, int]] = {}  # partition -> call_id -> offset of call.ended

    def call_started(self, partition: int, call_id: str, offset: int) -> None:
        self._open.setdefault(partition, {}).setdefault(call_id, offset)
        self.consumed(partition, offset)

    def call_ending(self, partition: int, call_id: str, offset: int) -> None:
        """The call's call.ended was read: it is needed until the call is closed."""
        self._ending.setdefault(partition, {}).setdefault(call_id, offset)

    def call_closed(self, partition: int, call_id: str) -> None:
        """The call's last transcript event has been handed to the producer."""
        self._open.get(partition, {}).pop(call_id, None)
        self._ending.get(partition, {}).pop(call_id, None)

    def frame_fed(
        self, stream: Hashable, partition: int, offset: int, offset_samples: int, rate_hz: int
    ) -> None:
        """A frame (at `offset`) went to `stream`: needed until a final of the stream covers it."""
        entry = self._uncovered.get(stream)
        if entry is None:
            entry = self._uncovered[stream] = _Stream(partition)
        entry.add((offset, offset_samples, rate_hz, offset_samples))

    def final_out(self, stream: Hashable, end_ms: int) -> None:
        """A final of `stream` ending at `end_ms` (in the leg) was handed to the producer: the frames
        that start before its end are covered (a new owner skips them: resume.ResumePoints)."""
        entry = self._uncovered.get(stream)
        if entry is not None:
            entry.cover(end_ms)

    def stream_done(self, stream: Hashable) -> None:
        """The stream's session ended and every event of it was handed on: it needs nothing more."""
        self._uncovered.pop(stream, None)

    def consumed(self, partition: int, offset: int) -> None:
        self._consumed[partition] = max(self._consumed.get(partition, 0), offset + 1)

    def safe_offset(self, partition: int) -> int | None:
        """The lowest offset still needed on `partition`; None before a record of it was handled."""
        safe = self._consumed.get(partition)
        if safe is None:
            return None
        for entry in self._uncovered.values():
            if entry.partition == partition and entry.frames:
                safe = min(safe, entry.frames[0][0])
        for offset in self._ending.get(partition, {}).values():
            safe = min(safe, offset)
        if self.pin_call_starts:
            for offset in self._open.get(partition, {}).values():
                safe = min(safe, offset)
        return safe

    def to_commit(self) -> dict[int, int]:
        """Offsets that moved since the last `committed()`; commit them after a producer flush."""
        out = {}
        for partition in self._consumed:
            offset = self.safe_offset(partition)
            if offset is not None and offset > self._committed.get(partition, -1):
                out[partition] = offset
        return out

    def committed(self, offsets: dict[int, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partition: int) -> None:
        """The partition was revoked: its calls now belong to another worker."""
        self._open.pop(partition, None)
        self._consumed.pop(partition, None)
        self._committed.pop(partition, None)
        self._ending.pop(partition, None)
        for stream in [s for s, entry in self._uncovered.items() if entry.partition == partition]:
            del self._uncovered[stream]

    def open_calls(self, partition: int) -> frozenset[str]:
        return frozenset(self._open.get(partition, {}))
