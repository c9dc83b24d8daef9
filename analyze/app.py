"""The faust application: one agent reads the transcript topic and writes the assist topic.

Records are parsed at the edge; a bad one goes to the dead-letter topic with its reason and
position, and the stream goes on. Sends are buffered by faust's producer, which it flushes
before committing the source offsets, so an offset is only committed once its assist events
are on the broker (at-least-once; event ids are deterministic, so redelivery is harmless).
Records faust itself skips around a restart or rebalance are read again (analyze/reread.py).

Per-call assist state lives in the policy (AssistPolicy); with `state_store="table"` (the default) a
faust table keyed by call_id, co-partitioned with the transcript topic, backs it
(analyze/state_table.py), so a call carries on where it was after a restart or a rebalance, and a
call's records delivered again after its end are ignored. With "memory" the new owner of a call
starts it afresh and may repeat a hint for a turn in flight; consumers dedup by event_id. What
holds on Tansu and what needs Apache Kafka: README, "Per-call state, faust tables and Tansu".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import faust
from aiokafka import ConsumerRecord
from faust.exceptions import ConsumerNotStarted

from analyze import metrics
from analyze.assist import AssistPolicy
from analyze.config import AnalyzeConfig
from analyze.events import (
    AgentHint,
    AssistEvent,
    ComplianceState,
    ConversationMetrics,
    RedactionAudit,
    Sentiment,
    SentimentTrend,
    SupervisorAlert,
)
from analyze.hotreload import RuleReloader
from analyze.reread import NextOffsets, RangeReader
from analyze.state_table import CallStateTable
from pipeline.contract import InvalidEvent
from pipeline.deadletter import DeadLetterSink, SourceRecord
from pipeline.logs import set_log_context
from pipeline.metrics import set_consumer_lag
from transcribe.events import FinalSegment, TranscriptCallEnded, parse_transcript_event

log = logging.getLogger(__name__)

STAGE = "analyze"
AGENT_NAME = "analyze.transcripts"


def build_app(
    config: AnalyzeConfig,
    policy: AssistPolicy,
    *,
    reloader: RuleReloader | None = None,
    reader: RangeReader | None = None,
) -> faust.App:
    """A faust app wired to the configured broker and topics; start it with `await app.start()`.

    With a reloader, a timer checks the rule file every `rules_reload_interval_s` and swaps a new
    valid version into the policy without a restart. With a reader (started), transcript records
    faust skips are read again and analysed before the record after them (analyze.reread).
    """
    table_mode = config.state_store == "table"
    app = faust.App(
        config.app_id,
        broker=[f"kafka://{host.strip()}" for host in config.kafka_bootstrap.split(",")],
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=config.partitions,
        topic_replication_factor=1,
        # The leader topic is an extra internal topic faust only needs for leader-only timers.
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=config.commit_interval_s,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        stream_buffer_maxsize=config.stream_buffer_maxsize,
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        datadir=str(config.datadir) if config.datadir else None,
        # 1 byte: every batch closes after its first record (analyze.config.one_record_per_batch).
        **({"producer_max_batch_size": 1} if table_mode and config.one_record_per_batch else {}),
    )
    states = CallStateTable.for_app(app, config, policy) if table_mode else None
    # Not internal: faust never declares these, so it cannot create them with another layout.
    # They must exist before the worker starts (pipeline.kafka.create_topics).
    transcripts = app.topic(
        config.transcripts_topic,
        partitions=config.partitions,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )
    assist = app.topic(config.assist_topic, key_serializer="raw", value_serializer="raw", internal=False)
    deadletters = app.topic(
        config.deadletter_topic, key_serializer="raw", value_serializer="raw", internal=False
    )

    async def analyze(message: SourceRecord) -> None:
        raw: bytes | None = message.value
        set_log_context(call_id=message.key)  # transcript records are keyed by call id
        try:
            parsed = parse_transcript_event(raw)
        except InvalidEvent as exc:
            metrics.TRANSCRIPT_RECORDS.labels(type="invalid").inc()
            await _dead_letter(deadletters, message, reason=exc.reason, detail=exc.detail)
            return
        metrics.TRANSCRIPT_RECORDS.labels(type=parsed.type).inc()
        set_log_context(call_id=parsed.call_id, leg=getattr(parsed, "leg", None))
        if states is not None:
            states.load(parsed, message.partition)
        if policy.has_ended(parsed.call_id):
            # Delivered again after the call's end (at least once): its events went out already.
            metrics.RECORDS_AFTER_END.inc()
            return
        try:
            # Embedding an utterance takes milliseconds of CPU: keep it off the event loop.
            produced = (
                await asyncio.to_thread(policy.on_event, parsed)
                if config.embeddings or config.sentiment_engine != "vader"
                else policy.on_event(parsed)
            )
        except Exception as exc:
            # A policy bug must not stall the partition on one record forever. The error's
            # type only: its message could quote transcript text.
            log.error("assist policy failed", extra={"call_id": parsed.call_id, "error": type(exc).__name__})
            await _dead_letter(deadletters, message, reason="analysis_failed", detail=type(exc).__name__)
            return
        # A final re-sent after a takeover (its id seen already) is analysed again, not a latency.
        first = not isinstance(parsed, FinalSegment) or metrics.SEEN_FINALS.first(
            parsed.call_id, parsed.segment_id
        )
        if not first:
            metrics.SEGMENTS_RESENT.labels("final").inc()
        elif isinstance(parsed, TranscriptCallEnded):
            metrics.SEEN_FINALS.forget(parsed.call_id)
        for assist_event in produced:
            await assist.send(key=assist_event.call_id.encode(), value=assist_event.to_bytes())
            _observe(assist_event, latency=first)
        if states is not None:
            states.save(parsed, produced, message.partition)
        metrics.ACTIVE_CALLS.set(policy.active_calls)

    due = NextOffsets()

    async def analyze_skipped(reader: RangeReader, message: faust.types.Message) -> None:
        """Analyse first the records before `message` that faust skipped (analyze.reread)."""
        partition = message.partition
        if not due.knows(partition):
            due.start(partition, await reader.committed(partition))
        missing = due.missing(partition, message.offset)
        if not missing:
            return
        records = await reader.read(partition, missing)
        set_log_context(call_id=message.key)  # the record that showed the gap
        log.warning(
            "transcript records skipped by the consumer; read again",
            extra={
                "partition": partition,
                "first_offset": missing.start,
                "last_offset": missing.stop - 1,
                "records": len(records),
            },
        )
        metrics.RECORDS_REREAD.inc(len(records))
        for record in records:
            await analyze(record)
            due.seen(partition, record.offset)
            # faust never had these acked: without it, its commits would stop below them.
            app.consumer.ack(_faust_message(record))

    async def analyze_transcripts(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            if reader is not None:
                await analyze_skipped(reader, message)
            await analyze(message)
            due.seen(message.partition, message.offset)

    if reader is not None:

        async def forget_offsets(sender: Any, revoked: Any, **_: Any) -> None:
            due.forget()

        app.on_partitions_revoked.connect(forget_offsets)

    app.agent(transcripts, name=AGENT_NAME)(analyze_transcripts)
    lag_reported: set[tuple[str, str]] = set()

    async def report_consumer_lag() -> None:
        nonlocal lag_reported
        with contextlib.suppress(ConsumerNotStarted):  # before start, or while stopping
            lag_reported = await set_consumer_lag(app.consumer, metrics.CONSUMER_LAG, lag_reported)

    app.timer(1.0, name="analyze.consumer-lag")(report_consumer_lag)

    if reloader is not None and config.rules_reload_interval_s > 0:

        async def reload_rules() -> None:
            # Compiling a new set embeds its intent examples: off the loop.
            await asyncio.to_thread(reloader.check)

        app.timer(config.rules_reload_interval_s, name="analyze.rules-reload")(reload_rules)
    return app


async def _dead_letter(topic: faust.TopicT, message: SourceRecord, *, reason: str, detail: str = "") -> None:
    async def send(key: bytes | None, value: bytes) -> object:
        return await topic.send(key=key, value=value)

    await DeadLetterSink(send, stage=STAGE).reject(message, reason, detail)


def _faust_message(record: ConsumerRecord) -> faust.types.Message:
    """A record read again, as faust's consumer knows its records (so that it can be acked)."""
    return faust.types.Message(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp / 1000.0,
        record.timestamp_type,
        record.headers,
        record.key,
        record.value,
        record.checksum,
        tp=faust.types.TP(record.topic, record.partition),
    )


def _observe(event: AssistEvent, *, latency: bool = True) -> None:
    match event:
        case Sentiment():
            final = event.final
        case AgentHint() | SupervisorAlert():
            final = event.on_final
            metrics.RULE_MATCHES.labels(rule_id=event.rule_id).inc()
            if event.matched_by == "compliance":
                metrics.COMPLIANCE_MISSES.labels(item_id=event.rule_id).inc()
        case ComplianceState() | SentimentTrend() | ConversationMetrics() | RedactionAudit():
            metrics.ASSIST_EVENTS.labels(type=event.type, final="true").inc()
            return  # a checklist update, not the answer to one segment: no latency to observe
    latency_s = max(0.0, event.emitted_at - event.segment_emitted_at)
    metrics.ASSIST_EVENTS.labels(type=event.type, final=str(final).lower()).inc()
    if not latency:
        return
    histogram = metrics.FINAL_TO_ASSIST_LATENCY if final else metrics.PARTIAL_TO_ASSIST_LATENCY
    histogram.labels(type=event.type).observe(latency_s)
