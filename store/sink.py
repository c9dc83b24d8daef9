"""Pure part of the sink: events -> the rows to write, and a batch of rows deduplicated by key.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

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
from deploy.contract import InvalidEvent
from transcribe.events import (
    FinalSegment,
    LegError,
    PartialSegment,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
)

T = TypeVar("T")

MAX_ID_CHARS = 256  # ids are primary keys: a btree entry cannot exceed ~2.7 kB


@dataclass(frozen=True, slots=True)
class CallStartRow:
    call_id: str
    started_at: datetime
    agent_id: str
    queue: str
    direction: str
    source: str
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class CallEndRow:
    call_id: str
    ended_at: datetime
    end_reason: str


@dataclass(frozen=True, slots=True)
class SegmentRow:
    segment_id: str
    call_id: str
    leg: str
    start_ms: int
    end_ms: int
    text: str
    confidence: float | None
    audio_captured_at: datetime
    audio_received_at: datetime
    emitted_at: datetime
    speech_ended_at: datetime | None
    # Kinds of personal data redacted from `text` (not a column: merge() turns it into an audit row).
    redaction_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SentimentRow:
    segment_id: str
    call_id: str
    leg: str
    sentiment_compound: float
    sentiment_positive: float
    sentiment_negative: float
    sentiment_neutral: float
    sentiment_emitted_at: datetime


@dataclass(frozen=True, slots=True)
class AssistRow:
    event_id: str
    call_id: str
    leg: str
    segment_id: str
    kind: str  # hint | alert
    rule_id: str
    rule_version: str
    on_final: bool
    matched: str
    payload: str
    severity: str | None
    segment_emitted_at: datetime
    emitted_at: datetime
    origin: str = "live"  # replay: written by `callscope analyze replay`


@dataclass(frozen=True, slots=True)
class LegErrorRow:
    call_id: str
    leg: str
    code: str
    at: datetime
    retryable: bool


@dataclass(frozen=True, slots=True)
class MetricsRow:
    call_id: str
    elapsed_ms: int
    call_ended: bool
    talk_ms: int
    non_talk_ms: int
    longest_silence_ms: int
    overtalk_ms: int
    interruptions: int
    agent: dict[str, Any]
    customer: dict[str, Any]
    emitted_at: datetime


@dataclass(frozen=True, slots=True)
class TrendRow:
    call_id: str
    scope: str
    elapsed_ms: int
    call_ended: bool
    quarters: list[float | None]
    trend: float | None
    rolling: float | None
    rolling_window_ms: int
    samples: int
    emitted_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRow:
    segment_id: str
    stage: str  # analyze | store
    call_id: str
    leg: str
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class ComplianceRows:
    """One checklist event: a row per step (call, rule version, item)."""

    call_id: str
    rule_version: str
    steps: tuple[ComplianceRow, ...]


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    call_id: str
    rule_version: str
    item_id: str
    status: str
    at_ms: int | None
    call_ended: bool
    event_id: str
    emitted_at: datetime


@dataclass(frozen=True, slots=True)
class RuleVersionRow:
    version: str
    first_seen_at: datetime
    content: str | None = None
    digest: str | None = None


Row = (
    CallStartRow
    | CallEndRow
    | SegmentRow
    | SentimentRow
    | AssistRow
    | LegErrorRow
    | MetricsRow
    | TrendRow
    | AuditRow
    | ComplianceRows
    | RuleVersionRow
)


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


@dataclass(frozen=True)
class Batch:
    """The rows of one consumed batch, at most one per key, ready for one transaction."""

    call_starts: tuple[CallStartRow, ...] = ()
    call_ends: tuple[CallEndRow, ...] = ()
    segments: tuple[SegmentRow, ...] = ()
    sentiments: tuple[SentimentRow, ...] = ()
    assist_events: tuple[AssistRow, ...] = ()
    leg_errors: tuple[LegErrorRow, ...] = ()
    metrics: tuple[MetricsRow, ...] = ()
    trends: tuple[TrendRow, ...] = ()
    audits: tuple[AuditRow, ...] = ()
    compliance: tuple[ComplianceRow, ...] = ()
    rule_versions: tuple[RuleVersionRow, ...] = ()

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables().values())

    def tables(self) -> dict[str, tuple[Any, ...]]:
        return {
            "calls_started": self.call_starts,
            "calls_ended": self.call_ends,
            "segments": self.segments,
            "segment_sentiments": self.sentiments,
            "assist_events": self.assist_events,
            "leg_errors": self.leg_errors,
            "conversation_metrics": self.metrics,
            "sentiment_trends": self.trends,
            "redaction_audit": self.audits,
            "compliance_state": self.compliance,
            "rule_set_versions": self.rule_versions,
        }


@dataclass
class _Collector:
    call_starts: dict[str, CallStartRow] = field(default_factory=dict)
    call_ends: dict[str, CallEndRow] = field(default_factory=dict)
    segments: dict[str, SegmentRow] = field(default_factory=dict)
    sentiments: dict[str, SentimentRow] = field(default_factory=dict)
    assist_events: dict[str, AssistRow] = field(default_factory=dict)
    leg_errors: dict[tuple[str, str, str, datetime], LegErrorRow] = field(default_factory=dict)
    metrics: dict[tuple[str, int], MetricsRow] = field(default_factory=dict)
    trends: dict[tuple[str, str, int], TrendRow] = field(default_factory=dict)
    audits: dict[tuple[str, str], AuditRow] = field(default_factory=dict)
    compliance: dict[tuple[str, str, str], ComplianceRow] = field(default_factory=dict)
    rule_versions: dict[str, RuleVersionRow] = field(default_factory=dict)


def merge(rows: Iterable[Row]) -> Batch:
    """Deduplicate rows in consumption order.

    Latest wins for calls, segments, sentiment, metrics, trends, audits and compliance steps (a
    replayed or re-scored final replaces the stored one). First wins for assist events, as in the
    database: the first firing of a rule on a turn (often on a partial, before the turn ended) is
    the one kept.
    PostgreSQL also refuses one INSERT ... ON CONFLICT DO UPDATE touching a key twice.
    """
    c = _Collector()
    for row in rows:
        match row:
            case CallStartRow():
                c.call_starts[row.call_id] = row
            case CallEndRow():
                c.call_ends[row.call_id] = row
            case SegmentRow():
                c.segments[row.segment_id] = row
                if row.redaction_counts:
                    c.audits[(row.segment_id, "store")] = AuditRow(
                        row.segment_id, "store", row.call_id, row.leg, row.redaction_counts
                    )
            case SentimentRow():
                c.sentiments[row.segment_id] = row
            case AssistRow():
                c.assist_events.setdefault(row.event_id, row)
                c.rule_versions.setdefault(row.rule_version, RuleVersionRow(row.rule_version, row.emitted_at))
            case LegErrorRow():
                c.leg_errors[(row.call_id, row.leg, row.code, row.at)] = row
            case MetricsRow():
                c.metrics[(row.call_id, row.elapsed_ms)] = row
            case TrendRow():
                c.trends[(row.call_id, row.scope, row.elapsed_ms)] = row
            case AuditRow():
                c.audits[(row.segment_id, row.stage)] = row
            case RuleVersionRow():
                c.rule_versions[row.version] = row
            case ComplianceRows():
                for step in row.steps:
                    c.compliance[(step.call_id, step.rule_version, step.item_id)] = step
                if row.steps:
                    first = row.steps[0].emitted_at
                    c.rule_versions.setdefault(row.rule_version, RuleVersionRow(row.rule_version, first))
    # Key order, so that two workers upserting the same rows lock them in the same order.
    return Batch(
        call_starts=_sorted(c.call_starts),
        call_ends=_sorted(c.call_ends),
        segments=_sorted(c.segments),
        sentiments=_sorted(c.sentiments),
        assist_events=_sorted(c.assist_events),
        leg_errors=_sorted(c.leg_errors),
        metrics=_sorted(c.metrics),
        trends=_sorted(c.trends),
        audits=_sorted(c.audits),
        compliance=_sorted(c.compliance),
        rule_versions=_sorted(c.rule_versions),
    )


def _sorted(rows: dict[Any, T]) -> tuple[T, ...]:
    return tuple(rows[key] for key in sorted(rows))


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
