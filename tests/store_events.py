"""Builders of transcript and assist events for the store tests: one scripted call."""

from __future__ import annotations

from analyze.events import AgentHint, Sentiment, SupervisorAlert, assist_event_id
from ingest.events import Leg
from transcribe.events import (
    FinalSegment,
    LegError,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    segment_id,
)

T0 = 1_760_000_000.0  # epoch seconds of every scripted call's start


def started(call_id: str, **fields: object) -> TranscriptCallStarted:
    defaults: dict[str, object] = {
        "started_at": T0,
        "agent_id": "agent-7",
        "queue": "billing",
        "direction": "inbound",
        "source": "replay",
        "metadata": {"ani_region": "EU"},
    }
    return TranscriptCallStarted(call_id=call_id, **(defaults | fields))


def ended(call_id: str, at: float = T0 + 60, reason: str = "hangup") -> TranscriptCallEnded:
    return TranscriptCallEnded(call_id=call_id, ended_at=at, reason=reason)


def times(start_ms: int, end_ms: int) -> StageTimes:
    return StageTimes(
        audio_captured_at=T0 + end_ms / 1000,
        audio_received_at=T0 + end_ms / 1000 + 0.01,
        emitted_at=T0 + end_ms / 1000 + 0.2,
        speech_ended_at=T0 + end_ms / 1000,
    )


def final(call_id: str, leg: Leg, start_ms: int, text: str, end_ms: int | None = None) -> FinalSegment:
    end_ms = end_ms if end_ms is not None else start_ms + 1500
    return FinalSegment(
        call_id=call_id,
        leg=leg,
        segment_id=segment_id(call_id, leg, start_ms),
        start_ms=start_ms,
        end_ms=end_ms,
        text=text,
        confidence=0.9,
        times=times(start_ms, end_ms),
    )


def partial(call_id: str, leg: Leg, start_ms: int, text: str, revision: int = 0) -> PartialSegment:
    return PartialSegment(
        call_id=call_id,
        leg=leg,
        segment_id=segment_id(call_id, leg, start_ms),
        start_ms=start_ms,
        end_ms=start_ms + 500,
        text=text,
        revision=revision,
        times=times(start_ms, start_ms + 500),
    )


def sentiment(seg: FinalSegment | PartialSegment, compound: float, *, is_final: bool = True) -> Sentiment:
    return Sentiment(
        call_id=seg.call_id,
        leg=seg.leg,
        segment_id=seg.segment_id,
        final=is_final,
        compound=compound,
        positive=max(compound, 0.0),
        negative=max(-compound, 0.0),
        neutral=1 - abs(compound),
        segment_emitted_at=seg.times.emitted_at,
        emitted_at=seg.times.emitted_at + 0.01,
    )


def hint(seg: FinalSegment | PartialSegment, rule_id: str, text: str, *, on_final: bool = True) -> AgentHint:
    return AgentHint(
        event_id=assist_event_id(seg.segment_id, rule_id, "1"),
        call_id=seg.call_id,
        leg=seg.leg,
        segment_id=seg.segment_id,
        on_final=on_final,
        rule_id=rule_id,
        rule_version="1",
        matched="cancel",
        segment_emitted_at=seg.times.emitted_at,
        emitted_at=seg.times.emitted_at + 0.02,
        hint=text,
    )


def alert(seg: FinalSegment | PartialSegment, rule_id: str, message: str) -> SupervisorAlert:
    return SupervisorAlert(
        event_id=assist_event_id(seg.segment_id, rule_id, "1"),
        call_id=seg.call_id,
        leg=seg.leg,
        segment_id=seg.segment_id,
        on_final=True,
        rule_id=rule_id,
        rule_version="1",
        matched="supervisor",
        segment_emitted_at=seg.times.emitted_at,
        emitted_at=seg.times.emitted_at + 0.02,
        severity="critical",
        message=message,
    )


def leg_error(call_id: str, leg: Leg = "customer") -> LegError:
    return LegError(call_id=call_id, leg=leg, code="engine_failed", retryable=True, at=T0 + 5)
