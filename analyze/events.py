"""Contract of the assist topic: sentiment per segment, hints for agents, alerts for supervisors.

Key = call_id. Event ids are derived from the segment and the rule, so a rule that fires on a
partial and again on the final of the same turn, or on a replay, is one event.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from ingest.events import Leg
from pipeline.contract import Event, parse_json_event


def assist_event_id(segment_id: str, rule_id: str, rule_version: str) -> str:
    digest = hashlib.sha256(f"{segment_id}\x1f{rule_id}\x1f{rule_version}".encode()).hexdigest()[:16]
    return f"evt-{digest}"


class Sentiment(Event):
    """VADER-style scores of one segment's text (partial or final) on one leg."""

    type: Literal["sentiment"] = "sentiment"
    call_id: str
    leg: Leg
    segment_id: str
    final: bool
    revision: int = 0
    compound: float = Field(ge=-1.0, le=1.0)
    positive: float
    negative: float
    neutral: float
    segment_emitted_at: float
    emitted_at: float


class _Triggered(Event):
    event_id: str
    call_id: str
    leg: Leg  # the leg whose words triggered it
    segment_id: str
    on_final: bool  # False when it fired on a partial, before the turn ended
    rule_id: str
    rule_version: str
    matched: str  # the rule phrase that matched (the rule's own words, not the transcript)
    segment_emitted_at: float
    emitted_at: float
    # How it fired: exact | fuzzy | semantic (phrase or intent example in `matched`), condition
    # (sentiment or trend alone), compliance (a missed compliance step).
    matched_by: str = "exact"
    category: str = ""  # the rule's dashboard label: escalation, competitor, sentiment, compliance, ...


class AgentHint(_Triggered):
    type: Literal["assist.hint"] = "assist.hint"
    hint: str
    # Next-best-action context: a snippet of the knowledge article the hint points to.
    knowledge_id: str = ""
    knowledge_title: str = ""
    knowledge_snippet: str = ""
    knowledge_score: float | None = None  # cosine similarity when retrieved by embedding


class SupervisorAlert(_Triggered):
    type: Literal["assist.alert"] = "assist.alert"
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str


ComplianceStatus = Literal["pending", "met", "missed", "not_applicable"]


class ComplianceStep(Event):
    item_id: str
    status: ComplianceStatus
    at_ms: int | None = None  # call position where it was met or missed


class ComplianceState(Event):
    """The whole checklist of one call, sent each time a step changes (latest wins per call)."""

    type: Literal["compliance.state"] = "compliance.state"
    event_id: str  # from the call, the rule-set version and the statuses: a replay is the same event
    call_id: str
    rule_version: str
    steps: tuple[ComplianceStep, ...]
    changed: tuple[str, ...]  # item ids whose status changed with this event
    call_ended: bool = False
    segment_id: str = ""  # the segment that caused the change; empty at call start and end
    segment_emitted_at: float | None = None
    emitted_at: float


class SentimentTrend(Event):
    """Sentiment over the call so far for one leg or the whole call (analyze.trends); latest wins.

    Sent with the conversation metrics, every `metrics_interval_ms` of call time, and with
    `call_ended` at the end of the call.
    """

    type: Literal["sentiment.trend"] = "sentiment.trend"
    call_id: str
    scope: Literal["agent", "customer", "call"]
    quarters: tuple[float | None, float | None, float | None, float | None]
    trend: float | None  # last quarter minus the mean of the earlier ones
    rolling: float | None
    rolling_window_ms: int
    samples: int
    elapsed_ms: int  # call position the figures cover
    call_ended: bool = False
    emitted_at: float


class LegConversation(Event):
    talk_ms: int
    non_talk_ms: int
    words: int
    words_per_minute: float | None
    interruptions: int  # turns of this leg that started over the other leg
    longest_turn_ms: int


class ConversationMetrics(Event):
    """Talk, silence, overtalk, interruptions and speaking rate (analyze.conversation); latest wins.

    Sent every `metrics_interval_ms` of call time and with `call_ended` at the end of the call.
    """

    type: Literal["conversation.metrics"] = "conversation.metrics"
    call_id: str
    elapsed_ms: int
    talk_ms: int
    non_talk_ms: int
    longest_silence_ms: int
    overtalk_ms: int
    interruptions: int
    agent: LegConversation
    customer: LegConversation
    call_ended: bool = False
    emitted_at: float


class RedactionAudit(Event):
    """Which kinds of personal data were redacted from a final segment: counts, never values."""

    type: Literal["redaction.audit"] = "redaction.audit"
    call_id: str
    leg: Leg
    segment_id: str
    counts: dict[str, int]  # kind (card, ssn, phone, email, dob) -> how many
    segment_emitted_at: float
    emitted_at: float


AssistEvent = Annotated[
    Sentiment
    | AgentHint
    | SupervisorAlert
    | ComplianceState
    | SentimentTrend
    | ConversationMetrics
    | RedactionAudit,
    Field(discriminator="type"),
]
_adapter = TypeAdapter(AssistEvent)


def parse_assist_event(raw: bytes | None) -> AssistEvent:
    return parse_json_event(_adapter, raw)
