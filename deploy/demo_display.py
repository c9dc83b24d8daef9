"""What the demo shows: live transcript lines, hints and alerts, and the stored call. Pure rendering.

The renderer takes parsed events and returns lines to print plus one status line (the latest
partial) that a terminal redraws in place. It prints transcript text to the user's terminal on
purpose: this is the product's display, not a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from analyze.events import AgentHint, AssistEvent, Sentiment, SupervisorAlert
from ingest.events import Leg
from store.queries import CallSummary
from transcribe.events import (
    FinalSegment,
    LegError,
    PartialSegment,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
)

Style = Literal["plain", "agent", "customer", "hint", "alert", "dim"]
_ANSI: dict[Style, str] = {
    "plain": "",
    "agent": "\033[36m",
    "customer": "\033[35m",
    "hint": "\033[1;33m",
    "alert": "\033[1;31m",
    "dim": "\033[2m",
}
_RESET = "\033[0m"


@dataclass(frozen=True)
class Line:
    text: str
    style: Style = "plain"

    def render(self, color: bool) -> str:
        return f"{_ANSI[self.style]}{self.text}{_RESET}" if color and self.style != "plain" else self.text


def clock(ms: int) -> str:
    """Position within the call as mm:ss.s."""
    minutes, rest = divmod(ms / 1000, 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def _speaker(leg: Leg) -> str:
    return f"{leg.upper():<8}"


@dataclass
class LiveView:
    """Folds one call's transcript and assist events into printable lines."""

    call_id: str
    partials: dict[Leg, PartialSegment] = field(default_factory=dict)
    finals_seen: set[str] = field(default_factory=set)
    assist_seen: set[str] = field(default_factory=set)
    ended: bool = False

    def on_transcript(self, event: TranscriptEvent) -> list[Line]:
        if event.call_id != self.call_id:
            return []
        match event:
            case TranscriptCallStarted():
                who = ", ".join(x for x in (event.agent_id and f"agent {event.agent_id}", event.queue) if x)
                return [Line(f"call {event.call_id} started" + (f" ({who})" if who else ""), "dim")]
            case PartialSegment():
                current = self.partials.get(event.leg)
                if event.segment_id in self.finals_seen:
                    return []  # a late partial of a turn that is already final
                if (
                    current is None
                    or current.segment_id != event.segment_id
                    or event.revision >= current.revision
                ):
                    self.partials[event.leg] = event
                return []
            case FinalSegment():
                if self.partials.get(event.leg) and self.partials[event.leg].segment_id == event.segment_id:
                    del self.partials[event.leg]
                if event.segment_id in self.finals_seen:
                    return []
                self.finals_seen.add(event.segment_id)
                latency = ""
                if event.times.speech_ended_at is not None:
                    latency = f"  (+{event.times.emitted_at - event.times.speech_ended_at:.1f} s)"
                style: Style = "agent" if event.leg == "agent" else "customer"
                return [
                    Line(
                        f"[{clock(event.start_ms)}] {_speaker(event.leg)} {event.text.strip()}{latency}",
                        style,
                    )
                ]
            case LegError():
                return [Line(f"          {event.leg} leg error: {event.code}", "alert")]
            case TranscriptCallEnded():
                self.ended = True
                self.partials.clear()
                return [Line(f"call ended ({event.reason})", "dim")]
        return []

    def on_assist(self, event: AssistEvent) -> list[Line]:
        if event.call_id != self.call_id:
            return []
        match event:
            case Sentiment():
                return []
            case AgentHint() if event.event_id not in self.assist_seen:
                self.assist_seen.add(event.event_id)
                when = "" if event.on_final else " (before the turn ended)"
                return [Line(f"          HINT  to agent: {event.hint}{when}", "hint")]
            case SupervisorAlert() if event.event_id not in self.assist_seen:
                self.assist_seen.add(event.event_id)
                when = "" if event.on_final else " (before the turn ended)"
                return [Line(f"          ALERT {event.severity}: {event.message}{when}", "alert")]
        return []

    def status(self) -> str:
        """The latest partial of each leg, for a line redrawn in place."""
        return "   ".join(
            f"… {leg.upper()}: {p.text.strip()}" for leg, p in sorted(self.partials.items()) if p.text.strip()
        )


def summary_lines(summary: CallSummary) -> list[Line]:
    """What PostgreSQL holds for the call, as the demo prints it at the end."""
    out: list[Line] = [Line("Stored in PostgreSQL", "plain")]
    call = summary.call
    if call is None:
        out.append(Line("  call row: missing", "alert"))
    else:
        duration = ""
        if call.started_at and call.ended_at:
            duration = f", {(call.ended_at - call.started_at).total_seconds():.1f} s"
        out.append(
            Line(
                f"  call {call.call_id}: agent={call.agent_id or '-'} queue={call.queue or '-'} "
                f"direction={call.direction} source={call.source} end={call.end_reason}{duration}"
            )
        )
    out.append(Line(f"  final segments: {len(summary.segments)}"))
    for seg in summary.segments:
        mood = "   n/a" if seg.sentiment_compound is None else f"{seg.sentiment_compound:+.2f}"
        style: Style = "agent" if seg.leg == "agent" else "customer"
        out.append(
            Line(f"    [{clock(seg.start_ms)}] {seg.leg.upper():<8} sentiment {mood}  {seg.text}", style)
        )
    out.append(Line(f"  assist events: {len(summary.assist_events)}"))
    for evt in summary.assist_events:
        when = "on final" if evt.on_final else "on partial"
        severity = f" {evt.severity}" if evt.severity else ""
        out.append(
            Line(
                f"    {evt.kind}{severity} rule={evt.rule_id} matched={evt.matched!r} ({evt.leg}, {when}): "
                f"{evt.payload}",
                "alert" if "alert" in evt.kind else "hint",
            )
        )
    for err in summary.leg_errors:
        out.append(Line(f"  leg error: {err.leg} {err.code} retryable={err.retryable}", "alert"))
    return out
