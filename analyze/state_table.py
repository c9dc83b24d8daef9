"""Per-call assist state in a faust table keyed by call_id, co-partitioned with the transcript topic.

The table holds each open call's encoded `CallState` (analyze.call_state); its changelog topic
has the transcript topic's partition count and a call's record goes to the partition its
transcript records come from, so whichever worker owns a call's partition recovers its state.
The policy keeps the live copy in memory and the table is its backing store: a call the policy
does not know (after a restart, a rebalance or eviction) is loaded from the table before its next
event; the state is written after an event worth saving and deleted when the call ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from analyze import metrics
from analyze.assist import AssistPolicy
from analyze.call_state import StateFormatError, decode_state, encode_state, worth_saving
from analyze.config import AnalyzeConfig
from analyze.events import AssistEvent
from transcribe.events import TranscriptCallEnded, TranscriptEvent

log = logging.getLogger(__name__)

TABLE_NAME = "calls"


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
    admin = AIOKafkaAdminClient(bootstrap_servers=config.kafka_bootstrap, client_id=f"{config.app_id}-state")
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=name,
                            num_partitions=config.partitions,
                            replication_factor=1,
                            topic_configs={"cleanup.policy": "compact"},
                        )
                    ]
                )
            except TopicAlreadyExistsError:
                pass
            log.info("changelog topic created", extra={"topic": name, "partitions": config.partitions})
        (described,) = await admin.describe_topics([name])
        found = len(described["partitions"])
    finally:
        await admin.close()
    if found != config.partitions:
        raise ChangelogTopicError(
            f"topic {name!r} has {found} partitions but the transcript topic has {config.partitions};"
            " delete it (the state is rebuilt as calls go on) or use another ANALYZE_APP_ID"
        )


class CallStateTable:
    """Keeps the policy's per-call state in a faust table; call inside the agent's stream only."""

    def __init__(self, app: faust.App, config: AnalyzeConfig, policy: AssistPolicy) -> None:
        self._policy = policy
        self.table: Any = app.Table(
            TABLE_NAME,
            partitions=config.partitions,
            key_type=bytes,  # bytes: faust's "raw" codec both ways
            value_type=bytes,
            extra_topic_configs={"cleanup.policy": "compact"},
            help="Assist state per open call (analyze.call_state), keyed by call_id.",
        )

        # The state of calls on partitions this worker may no longer own is stale from now on;
        # what it still owns reloads from the table on the next event of each call.
        async def forget(sender: Any, revoked: Any, **_: Any) -> None:
            policy.forget_calls()

        app.on_partitions_revoked.connect(forget)

    def load(self, event: TranscriptEvent) -> None:
        """Restore the event's call from the table if the policy does not hold it."""
        call_id = event.call_id
        if self._policy.knows(call_id):
            return
        raw = self.table.get(call_id.encode())
        if raw is None:
            return
        try:
            self._policy.restore(call_id, decode_state(raw))
            metrics.CALL_STATE_OPS.labels(op="restored").inc()
        except StateFormatError as exc:
            log.warning("call state unreadable", extra={"call_id": call_id, "error": str(exc)})
            metrics.CALL_STATE_OPS.labels(op="unreadable").inc()

    def save(self, event: TranscriptEvent, produced: Sequence[AssistEvent]) -> None:
        """Write the call's state after an event worth a changelog record; delete it at the call's end."""
        key = event.call_id.encode()
        if isinstance(event, TranscriptCallEnded):
            if key in self.table:
                del self.table[key]
                metrics.CALL_STATE_OPS.labels(op="deleted").inc()
            return
        if not worth_saving(event, produced):
            return
        snapshot = self._policy.snapshot(event.call_id)
        if snapshot is not None:
            self.table[key] = encode_state(snapshot)
            metrics.CALL_STATE_OPS.labels(op="saved").inc()
