"""Contract of the transcript topic: call lifecycle, partial and final segments, leg errors.

Key = call_id. A partial is replaceable (latest revision wins); a final is durable and its id is
derived from the call, the leg and where its audio starts, so a replayed final is the same row.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from ingest.events import Direction, Leg
from pipeline.contract import Event, parse_json_event


def segment_id(call_id: str, leg: Leg, start_ms: int) -> str:
    """Deterministic id of a turn: the same audio of the same leg always gets the same id."""
    digest = hashlib.sha256(f"{call_id}\x1f{leg}\x1f{start_ms}".encode()).hexdigest()[:16]
    return f"seg-{digest}"


class StageTimes(Event):
    """Wall-clock stamps (epoch seconds) so latency per stage is measurable from the data."""

    audio_captured_at: float  # capture time of the newest audio this text covers
    audio_received_at: float  # when the transcriber read that audio from Kafka
    emitted_at: float  # when the transcriber produced this event
    speech_ended_at: float | None = None  # finals: capture time of the end of speech


class TranscriptCallStarted(Event):
    type: Literal["call.started"] = "call.started"
    call_id: str
    started_at: float
    agent_id: str = ""
    queue: str = ""
    direction: Direction = "inbound"
    source: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)


class TranscriptCallEnded(Event):
    type: Literal["call.ended"] = "call.ended"
    call_id: str
    ended_at: float
    reason: str = "hangup"


class _Segment(Event):
    call_id: str
    leg: Leg
    segment_id: str
    start_ms: int = Field(ge=0)  # position within the leg's audio
    end_ms: int = Field(ge=0)
    text: str
    times: StageTimes


class PartialSegment(_Segment):
    type: Literal["segment.partial"] = "segment.partial"
    revision: int = Field(ge=0)  # increases within a turn; latest wins


class FinalSegment(_Segment):
    type: Literal["segment.final"] = "segment.final"
    confidence: float | None = None  # mean token probability where the engine reports it


class LegError(Event):
    """A leg could not be transcribed (bad audio, engine failure); the call's other leg goes on."""

    type: Literal["leg.error"] = "leg.error"
    call_id: str
    leg: Leg
    code: str
    retryable: bool
    at: float


TranscriptEvent = Annotated[
    TranscriptCallStarted | TranscriptCallEnded | PartialSegment | FinalSegment | LegError,
    Field(discriminator="type"),
]
_adapter = TypeAdapter(TranscriptEvent)


def parse_transcript_event(raw: bytes | None) -> TranscriptEvent:
    return parse_json_event(_adapter, raw)
