"""Assist policy: transcript events in, sentiment, agent hints and supervisor alerts out. Pure.

Per call it remembers, for its recent segments, the last text it scored and the event ids it
already emitted, so a rule that fires on a partial is not sent again on every later partial and
on the final of the same turn. The ids are deterministic, so a duplicate after a restart is
harmless downstream; this memory only keeps the agent's screen quiet.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

from analyze.events import AgentHint, AssistEvent, Sentiment, SupervisorAlert, assist_event_id
from analyze.rules import RuleMatch, RuleMatcher
from analyze.sentiment import SentimentScorer
from transcribe.events import (
    FinalSegment,
    LegError,
    PartialSegment,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
)

DEFAULT_MAX_CALLS = 20_000
DEFAULT_MAX_SEGMENTS_PER_CALL = 256


@dataclass(slots=True)
class _SegmentState:
    last_text: str | None = None  # text of the last scored revision
    last_revision: int = -1
    final: bool = False
    fired: set[str] = field(default_factory=set)


class _CallState:
    __slots__ = ("_max_segments", "segments")

    def __init__(self, max_segments: int) -> None:
        self._max_segments = max_segments
        self.segments: OrderedDict[str, _SegmentState] = OrderedDict()

    def segment(self, segment_id: str) -> _SegmentState:
        state = self.segments.get(segment_id)
        if state is None:
            state = self.segments[segment_id] = _SegmentState()
            # Old turns are long over; forgetting them only risks a repeat on a replayed record.
            while len(self.segments) > self._max_segments:
                self.segments.popitem(last=False)
        return state


class AssistPolicy:
    """Turns one transcript event into the assist events it causes."""

    def __init__(
        self,
        matcher: RuleMatcher,
        scorer: SentimentScorer,
        *,
        clock: Callable[[], float] = time.time,
        max_calls: int = DEFAULT_MAX_CALLS,
        max_segments_per_call: int = DEFAULT_MAX_SEGMENTS_PER_CALL,
    ) -> None:
        self._matcher = matcher
        self._scorer = scorer
        self._clock = clock
        self._max_calls = max_calls
        self._max_segments = max_segments_per_call
        self._calls: OrderedDict[str, _CallState] = OrderedDict()

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def on_event(self, event: TranscriptEvent) -> list[AssistEvent]:
        match event:
            case TranscriptCallStarted(call_id=call_id):
                self._call(call_id)
                return []
            case TranscriptCallEnded(call_id=call_id):
                self._calls.pop(call_id, None)
                return []
            case PartialSegment():
                return self._on_partial(event)
            case FinalSegment():
                return self._on_final(event)
            case LegError():
                return []
        return []

    def _call(self, call_id: str) -> _CallState:
        state = self._calls.get(call_id)
        if state is None:
            # Calls whose call.ended never arrives (lost producer, reassigned partition) age out.
            state = self._calls[call_id] = _CallState(self._max_segments)
            while len(self._calls) > self._max_calls:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(call_id)
        return state

    def _on_partial(self, segment: PartialSegment) -> list[AssistEvent]:
        state = self._call(segment.call_id).segment(segment.segment_id)
        text = segment.text.strip()
        if state.final or segment.revision < state.last_revision or text == state.last_text or not text:
            return []  # late, stale or unchanged revision: nothing new to say
        state.last_text, state.last_revision = text, segment.revision
        return self._assess(segment, state, text, final=False, revision=segment.revision)

    def _on_final(self, segment: FinalSegment) -> list[AssistEvent]:
        state = self._call(segment.call_id).segment(segment.segment_id)
        text = segment.text.strip()
        if state.final and text == state.last_text:
            return []  # the same final delivered again
        state.last_text, state.final = text, True
        # Finals carry no revision; 0 keeps a replayed final's event identical.
        return self._assess(segment, state, text, final=True, revision=0)

    def _assess(
        self,
        segment: PartialSegment | FinalSegment,
        state: _SegmentState,
        text: str,
        *,
        final: bool,
        revision: int,
    ) -> list[AssistEvent]:
        now = self._clock()
        out: list[AssistEvent] = []
        if text:
            scores = self._scorer.score(text)
            out.append(
                Sentiment(
                    call_id=segment.call_id,
                    leg=segment.leg,
                    segment_id=segment.segment_id,
                    final=final,
                    revision=revision,
                    compound=scores.compound,
                    positive=scores.positive,
                    negative=scores.negative,
                    neutral=scores.neutral,
                    segment_emitted_at=segment.times.emitted_at,
                    emitted_at=now,
                )
            )
        for found in self._matcher.match(text, segment.leg):
            event_id = assist_event_id(segment.segment_id, found.rule.id, self._matcher.rule_set.version)
            if event_id in state.fired:
                continue
            state.fired.add(event_id)
            out.append(self._triggered(segment, found, event_id, final=final, now=now))
        return out

    def _triggered(
        self,
        segment: PartialSegment | FinalSegment,
        found: RuleMatch,
        event_id: str,
        *,
        final: bool,
        now: float,
    ) -> AgentHint | SupervisorAlert:
        common = {
            "event_id": event_id,
            "call_id": segment.call_id,
            "leg": segment.leg,
            "segment_id": segment.segment_id,
            "on_final": final,
            "rule_id": found.rule.id,
            "rule_version": self._matcher.rule_set.version,
            "matched": found.phrase,
            "segment_emitted_at": segment.times.emitted_at,
            "emitted_at": now,
        }
        match found.rule.kind:
            case "hint":
                return AgentHint(hint=found.rule.hint, **common)
            case "alert":
                return SupervisorAlert(severity=found.rule.severity, message=found.rule.message, **common)
            case unknown:
                assert_never(unknown)
