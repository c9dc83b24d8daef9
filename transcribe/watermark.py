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


class CommitWatermark:
    """Pure bookkeeping; offsets are Kafka offsets, commits are "next offset to read"."""

    def __init__(self, *, pin_call_starts: bool = False) -> None:
        # True: nothing opens a call but its audio call.started (no transcript topic read back on a
        # takeover), so the commit also stays at the oldest open call's call.started.
        self.pin_call_starts = pin_call_starts
        self._open: dict[int, dict[str, int]] = {}  # partition -> call_id -> offset of call.started
        self._consumed: dict[int, int] = {}  # partition -> next offset after the last record handled
        self._committed: dict[int, int] = {}
        # stream -> its partition and its frames not covered by a final: (offset, first sample, rate)
        self._uncovered: dict[Hashable, tuple[int, deque[tuple[int, int, int]]]] = {}
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
            entry = self._uncovered[stream] = (partition, deque())
        entry[1].append((offset, offset_samples, rate_hz))

    def final_out(self, stream: Hashable, end_ms: int) -> None:
        """A final of `stream` ending at `end_ms` (in the leg) was handed to the producer: the frames
        that start before its end are covered (a new owner skips them: resume.ResumePoints)."""
        entry = self._uncovered.get(stream)
        if entry is None:
            return
        frames = entry[1]
        while frames and frames[0][1] * 1000 < end_ms * frames[0][2]:
            frames.popleft()

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
        for stream_partition, frames in self._uncovered.values():
            if stream_partition == partition and frames:
                safe = min(safe, frames[0][0])
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
        for stream in [s for s, (p, _) in self._uncovered.items() if p == partition]:
            del self._uncovered[stream]

    def open_calls(self, partition: int) -> frozenset[str]:
        return frozenset(self._open.get(partition, {}))
