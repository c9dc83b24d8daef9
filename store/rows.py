"""The rows the sink writes, one type per table (store/models.py has the tables). Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
