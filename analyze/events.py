"""Contract of the assist topic: sentiment per segment, hints for agents, alerts for supervisors.

Key = call_id. Event ids are derived from the segment and the rule, so a rule that fires on a
partial and again on the final of the same turn, or on a replay, is one event.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from deploy.contract import Event, parse_json_event
from ingest.events import Leg


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


class AgentHint(_Triggered):
    type: Literal["assist.hint"] = "assist.hint"
    hint: str


class SupervisorAlert(_Triggered):
    type: Literal["assist.alert"] = "assist.alert"
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str


AssistEvent = Annotated[Sentiment | AgentHint | SupervisorAlert, Field(discriminator="type")]
_adapter = TypeAdapter(AssistEvent)


def parse_assist_event(raw: bytes | None) -> AssistEvent:
    return parse_json_event(_adapter, raw)
