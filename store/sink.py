"""Pure part of the sink: events -> the rows to write (store/rows.py); store/batch.py merges them.

No I/O here. Final segment text is redacted here (analyze.redact), before it is written: the
transcript topic is upstream of analysis and holds what was said, and the database must never
hold a card number even while the analysis stage is down. The redaction is deterministic, so it
agrees with the analysis stage's own (whose audit arrives as RedactionAudit events).

`row_of` rejects what the database would refuse forever (timestamps out of range,
ids too long to index) with InvalidEvent, so the worker dead-letters that record instead of
retrying its batch without end.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

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
from analyze.redact import redact
from pipeline.contract import InvalidEvent
from store.rows import (
    AssistRow,
    AuditRow,
    CallEndRow,
    CallStartRow,
    ComplianceRow,
    ComplianceRows,
    LegErrorRow,
    MetricsRow,
    Row,
    SegmentRow,
    SentimentRow,
    TrendRow,
)
from transcribe.events import (
    FinalSegment,
    LegError,
    PartialSegment,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
)

MAX_ID_CHARS = 256  # ids are primary keys: a btree entry cannot exceed ~2.7 kB


def row_of(event: TranscriptEvent | AssistEvent) -> Row | None:
    """The row one event contributes, or None for what is not stored (partials, partial sentiment)."""
    match event:
        case TranscriptCallStarted():
            return CallStartRow(
                call_id=_id(event.call_id),
                started_at=_ts(event.started_at),
                agent_id=_clean(event.agent_id),
                queue=_clean(event.queue),
                direction=event.direction,
                source=_clean(event.source),
                metadata={_clean(k): _clean(v) for k, v in event.metadata.items()},
            )
        case TranscriptCallEnded():
            return CallEndRow(
                call_id=_id(event.call_id), ended_at=_ts(event.ended_at), end_reason=_clean(event.reason)
            )
        case FinalSegment():
            times = event.times
            redaction = redact(_clean(event.text))
            return SegmentRow(
                segment_id=_id(event.segment_id),
                call_id=_id(event.call_id),
                leg=event.leg,
                start_ms=event.start_ms,
                end_ms=event.end_ms,
                text=redaction.text,
                confidence=event.confidence,
                audio_captured_at=_ts(times.audio_captured_at),
                audio_received_at=_ts(times.audio_received_at),
                emitted_at=_ts(times.emitted_at),
                speech_ended_at=None if times.speech_ended_at is None else _ts(times.speech_ended_at),
                redaction_counts=redaction.counts,
            )
        case PartialSegment():
            return None
        case LegError():
            return LegErrorRow(
                call_id=_id(event.call_id),
                leg=event.leg,
                code=_id(event.code),
                at=_ts(event.at),
                retryable=event.retryable,
            )
        case Sentiment(final=False):
            return None
        case Sentiment():
            return SentimentRow(
                segment_id=_id(event.segment_id),
                call_id=_id(event.call_id),
                leg=event.leg,
                sentiment_compound=event.compound,
                sentiment_positive=event.positive,
                sentiment_negative=event.negative,
                sentiment_neutral=event.neutral,
                sentiment_emitted_at=_ts(event.emitted_at),
            )
        case AgentHint():
            return _assist_row(event, kind="hint", payload=event.hint, severity=None)
        case SupervisorAlert():
            return _assist_row(event, kind="alert", payload=event.message, severity=event.severity)
        case ComplianceState():
            steps = tuple(
                ComplianceRow(
                    call_id=_id(event.call_id),
                    rule_version=_id(event.rule_version),
                    item_id=_id(step.item_id),
                    status=step.status,
                    at_ms=step.at_ms,
                    call_ended=event.call_ended,
                    event_id=_id(event.event_id),
                    emitted_at=_ts(event.emitted_at),
                )
                for step in event.steps
            )
            return ComplianceRows(_id(event.call_id), _id(event.rule_version), steps)
        case ConversationMetrics():
            return MetricsRow(
                call_id=_id(event.call_id),
                elapsed_ms=event.elapsed_ms,
                call_ended=event.call_ended,
                talk_ms=event.talk_ms,
                non_talk_ms=event.non_talk_ms,
                longest_silence_ms=event.longest_silence_ms,
                overtalk_ms=event.overtalk_ms,
                interruptions=event.interruptions,
                agent=event.agent.model_dump(exclude={"v"}),
                customer=event.customer.model_dump(exclude={"v"}),
                emitted_at=_ts(event.emitted_at),
            )
        case SentimentTrend():
            return TrendRow(
                call_id=_id(event.call_id),
                scope=event.scope,
                elapsed_ms=event.elapsed_ms,
                call_ended=event.call_ended,
                quarters=list(event.quarters),
                trend=event.trend,
                rolling=event.rolling,
                rolling_window_ms=event.rolling_window_ms,
                samples=event.samples,
                emitted_at=_ts(event.emitted_at),
            )
        case RedactionAudit():
            counts = {_clean(k)[:32]: v for k, v in event.counts.items()}
            return AuditRow(_id(event.segment_id), "analyze", _id(event.call_id), event.leg, counts)
    raise InvalidEvent("unsupported_event", type(event).__name__)


def _assist_row(
    event: AgentHint | SupervisorAlert, *, kind: str, payload: str, severity: str | None
) -> AssistRow:
    return AssistRow(
        event_id=_id(event.event_id),
        call_id=_id(event.call_id),
        leg=event.leg,
        segment_id=_id(event.segment_id),
        kind=kind,
        rule_id=_clean(event.rule_id),
        rule_version=_clean(event.rule_version),
        on_final=event.on_final,
        matched=_clean(event.matched),
        payload=_clean(payload),
        severity=severity,
        segment_emitted_at=_ts(event.segment_emitted_at),
        emitted_at=_ts(event.emitted_at),
    )


def _clean(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL, which JSON allows ("\u0000").
    return value.replace("\x00", "")


def _id(value: str) -> str:
    value = _clean(value)
    if not value:
        raise InvalidEvent("empty_id")
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent("id_too_long", f"{len(value)} chars")
    return value


def _ts(epoch_s: float) -> datetime:
    if not math.isfinite(epoch_s):
        raise InvalidEvent("timestamp_out_of_range", "not finite")
    try:
        return datetime.fromtimestamp(epoch_s, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidEvent("timestamp_out_of_range", str(epoch_s)[:30]) from None
