"""Per-call assist state in a faust table keyed by call_id, co-partitioned with the transcript topic.

The table holds each open call's encoded `CallState` (analyze.call_state); its changelog topic
has the transcript topic's partition count and a call's record goes to the partition its
transcript records come from, so whichever worker owns a call's partition recovers its state.
The policy keeps the live copy in memory and the table is its backing store: a call the policy
does not know (after a restart, a rebalance or eviction) is loaded from the table before its next
event; the state is written after an event worth saving and, when the call ends, replaced by a
mark that it ended (dropped after `ended_call_grace_s`), so that records delivered again are
ignored.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import faust

from analyze import metrics
from analyze.assist import AssistPolicy
from analyze.call_state import EndedMark, StateFormatError, decode_state, encode_state, worth_saving
from analyze.config import AnalyzeConfig
from analyze.events import AssistEvent
from pipeline.kafka import admin_client, create_missing, partition_count
from transcribe.events import TranscriptCallEnded, TranscriptEvent

log = logging.getLogger(__name__)

TABLE_NAME = "calls"
# End marks dropped at most per record processed: the table's changelog gets a burst of deletes
# after a quiet spell at most this big.
_EXPIRE_PER_RECORD = 8


def changelog_topic(config: AnalyzeConfig) -> str:
    """faust's name for the table's changelog: `<app id>-<table name>-changelog`."""
    return f"{config.app_id}-{TABLE_NAME}-changelog"


class ChangelogTopicError(RuntimeError):
    """The changelog topic exists with another partition count: state would not follow its calls."""


async def ensure_changelog_topic(config: AnalyzeConfig) -> None:
    """Create the changelog with the transcript topic's partition count, before faust starts.

    A broker that auto-creates it picks its own count (Tansu: 4), which breaks co-partitioning.
    """
    name = changelog_topic(config)
    async with admin_client(config.kafka_bootstrap, client_id=f"{config.app_id}-state") as admin:
        if await create_missing(admin, [name], config.partitions, configs={"cleanup.policy": "compact"}):
            log.info("changelog topic created", extra={"topic": name, "partitions": config.partitions})
        found = await partition_count(admin, name)
    if found != config.partitions:
        raise ChangelogTopicError(
            f"topic {name!r} has {found} partitions but the transcript topic has {config.partitions};"
            " delete it (the state is rebuilt as calls go on) or use another CALLSCOPE_ANALYZE_APP_ID"
        )


class CallStateTable:
    """Keeps the policy's per-call state in a faust table; call inside the agent's stream only.

    `table` is the faust table (`for_app`) or, in unit tests, any mutable mapping. An ended call's
    state gives way to an `EndedMark` kept for `ended_grace_s`: delivery is at least once (faust
    rewinds to the committed offset after a rebalance or restart), and the call's records
    delivered again must be ignored, not start the call over. A mark is dropped while a record of
    its partition is processed, the only place faust lets the table be written for that partition.
    """

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        policy: AssistPolicy,
        *,
        ended_grace_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self._policy = policy
        self._grace_s = ended_grace_s
        self._clock = clock
        # Per transcript partition: end marks oldest first, (ended at, key); built from the table
        # in one pass on the first record after an assignment (None until then), kept up as calls end.
        self._marks: defaultdict[int, deque[tuple[float, bytes]]] | None = None

    @classmethod
    def for_app(cls, app: faust.App, config: AnalyzeConfig, policy: AssistPolicy) -> CallStateTable:
        table: Any = app.Table(
            TABLE_NAME,
            partitions=config.partitions,
            key_type=bytes,  # bytes: faust's "raw" codec both ways
            value_type=bytes,
            extra_topic_configs={"cleanup.policy": "compact"},
            help="Assist state per open call (analyze.call_state), keyed by call_id.",
        )
        states = cls(table, policy, ended_grace_s=config.ended_call_grace_s)

        # The state of calls on partitions this worker may no longer own is stale from now on;
        # what it still owns reloads from the table on the next event of each call.
        async def forget(sender: Any, revoked: Any, **_: Any) -> None:
            states.forget()

        app.on_partitions_revoked.connect(forget)
        return states

    def forget(self) -> None:
        self._policy.forget_calls()
        self._marks = None

    def load(self, event: TranscriptEvent, partition: int) -> None:
        """Restore the event's call from the table if the policy does not hold it."""
        self._expire(partition)
        call_id = event.call_id
        if self._policy.knows(call_id) or self._policy.has_ended(call_id):
            return
        raw = self.table.get(call_id.encode())
        if raw is None:
            return
        if EndedMark.is_mark(raw):
            self._policy.mark_ended(call_id)
            return
        try:
            self._policy.restore(call_id, decode_state(raw))
            metrics.CALL_STATE_OPS.labels(op="restored").inc()
        except StateFormatError as exc:
            log.warning("call state unreadable", extra={"call_id": call_id, "error": str(exc)})
            metrics.CALL_STATE_OPS.labels(op="unreadable").inc()

    def save(self, event: TranscriptEvent, produced: Sequence[AssistEvent], partition: int) -> None:
        """Write the call's state after an event worth a changelog record; mark it ended at its end."""
        key = event.call_id.encode()
        if isinstance(event, TranscriptCallEnded):
            now = self._clock()
            self.table[key] = EndedMark(now, partition).encode()
            self._marks_by_partition(partition)[partition].append((now, key))
            metrics.CALL_STATE_OPS.labels(op="ended").inc()
            return
        if not worth_saving(event, produced):
            return
        snapshot = self._policy.snapshot(event.call_id)
        if snapshot is not None:
            self.table[key] = encode_state(snapshot)
            metrics.CALL_STATE_OPS.labels(op="saved").inc()

    def _expire(self, partition: int) -> None:
        """Drop a few end marks of `partition` older than the grace period (bounded work per record)."""
        marks = self._marks_by_partition(partition)[partition]
        cutoff = self._clock() - self._grace_s
        for _ in range(_EXPIRE_PER_RECORD):
            if not marks or marks[0][0] > cutoff:
                return
            _, key = marks.popleft()
            raw = self.table.get(key)
            if raw is not None and EndedMark.is_mark(raw):
                del self.table[key]
                metrics.CALL_STATE_OPS.labels(op="expired").inc()

    def _marks_by_partition(self, current: int) -> defaultdict[int, deque[tuple[float, bytes]]]:
        if self._marks is None:
            found: list[tuple[float, bytes, int]] = []
            for key, raw in list(self.table.items()):
                if EndedMark.is_mark(raw):
                    try:
                        mark = EndedMark.decode(raw)
                    except StateFormatError:
                        mark = EndedMark(0.0, current)  # unreadable: drop it with the next expiry
                    found.append((mark.at, key, mark.partition))
            self._marks = defaultdict(deque)
            for at, key, partition in sorted(found):
                self._marks[partition].append((at, key))
        return self._marks
