"""Which offset is safe to commit per partition: the start of the oldest call still open.

A call's finals exist only once its audio has been read and decoded. Committing past an open
call's call.started would lose them on a restart, so the committed offset stays at the oldest
open call's start; re-reading from there re-emits the same finals (ids come from positions).
"""

from __future__ import annotations


class CommitWatermark:
    """Pure bookkeeping; offsets are Kafka offsets, commits are "next offset to read"."""

    def __init__(self) -> None:
        self._open: dict[int, dict[str, int]] = {}  # partition -> call_id -> offset of call.started
        self._consumed: dict[int, int] = {}  # partition -> next offset after the last record handled
        self._committed: dict[int, int] = {}

    def call_started(self, partition: int, call_id: str, offset: int) -> None:
        self._open.setdefault(partition, {}).setdefault(call_id, offset)
        self.consumed(partition, offset)

    def call_closed(self, partition: int, call_id: str) -> None:
        """The call's last transcript event has been handed to the producer."""
        self._open.get(partition, {}).pop(call_id, None)

    def consumed(self, partition: int, offset: int) -> None:
        self._consumed[partition] = max(self._consumed.get(partition, 0), offset + 1)

    def safe_offset(self, partition: int) -> int | None:
        open_calls = self._open.get(partition)
        if open_calls:
            return min(open_calls.values())
        return self._consumed.get(partition)

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

    def open_calls(self, partition: int) -> frozenset[str]:
        return frozenset(self._open.get(partition, {}))
