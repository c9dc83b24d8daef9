"""Assist policy: transcript events in, sentiment, agent hints and supervisor alerts out. Pure.

Per call it remembers, for its recent segments, the last text it scored and the event ids it
already emitted, so a rule that fires on a partial is not sent again on every later partial and
on the final of the same turn. The ids are deterministic, so a duplicate after a restart is
harmless downstream; this memory only keeps the agent's screen quiet. It also keeps what rule
conditions look at (rules fired so far, the customer's mean sentiment, the sentiment trend) and
the call's compliance checklist.

The rule set is swapped whole by `use_rules` (hot reload); one assessment reads it once, so every
event of a segment carries one rule-set version.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, assert_never

from analyze.compliance import ComplianceTracker, call_end_segment_id, miss_alert, state_event
from analyze.events import AgentHint, AssistEvent, Sentiment, SupervisorAlert, assist_event_id
from analyze.knowledge import KnowledgeBase, Snippet
from analyze.live import LiveCall, LiveSettings, audit_event
from analyze.redact import redact
from analyze.rule_matcher import TextMatches
from analyze.rules import Rule, RuleContext, RuleMatcher
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
    __slots__ = (
        "_max_segments",
        "compliance",
        "compliance_version",
        "customer_sentiment",
        "fired_rules",
        "last_ms",
        "live",
        "segments",
        "trend",
    )

    def __init__(self, max_segments: int, matcher: RuleMatcher) -> None:
        self._max_segments = max_segments
        self.segments: OrderedDict[str, _SegmentState] = OrderedDict()
        self.fired_rules: set[str] = set()  # rule ids, for after_rules / unless_rules conditions
        self.customer_sentiment: list[float] = [0.0, 0.0]  # sum and count of the customer's finals
        # The sentiment trend figure of the call (analyze.trends), for call_trend_below conditions;
        # None until the trend step of the policy sets it.
        self.trend: float | None = None
        self.last_ms = 0  # furthest call position seen, for the end of the checklist
        # The checklist stays that of the rule set the call started with, across a hot reload.
        self.compliance = ComplianceTracker(matcher.rule_set.compliance)
        self.compliance_version = matcher.rule_set.version
        self.live: LiveCall | None = None  # set by AssistPolicy._call

    @property
    def call_sentiment(self) -> float | None:
        total, count = self.customer_sentiment
        return total / count if count else None

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
        knowledge: KnowledgeBase | None = None,
        semantic_on_partials: bool = False,
        live: LiveSettings | None = None,
    ) -> None:
        self._live = live or LiveSettings()
        self._matcher = matcher
        self._knowledge = knowledge
        # Semantic intents cost an embedding (~5-10 ms); on finals only, unless asked.
        self._semantic_on_partials = semantic_on_partials
        self._scorer = scorer
        self._clock = clock
        self._max_calls = max_calls
        self._max_segments = max_segments_per_call
        self._calls: OrderedDict[str, _CallState] = OrderedDict()

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def rules(self) -> RuleMatcher:
        return self._matcher

    def use_rules(self, matcher: RuleMatcher) -> None:
        """Swap in a new compiled rule set; the next assessment uses it (one reference assignment)."""
        self._matcher = matcher

    def on_event(self, event: TranscriptEvent) -> list[AssistEvent]:
        match event:
            case TranscriptCallStarted(call_id=call_id):
                call = self._call(call_id)
                self._live_of(call, call_id).started_at = event.started_at
                if not call.compliance.steps:
                    return []
                # The checklist as it starts, all pending, for the agent's screen.
                return [
                    state_event(
                        call.compliance,
                        [],
                        call_id=call_id,
                        rule_version=call.compliance_version,
                        emitted_at=self._clock(),
                    )
                ]
            case TranscriptCallEnded(call_id=call_id):
                ended = self._calls.pop(call_id, None)
                if ended is None:
                    return []
                live = self._live_of(ended, call_id).on_end(event, now=self._clock())
                return [*live, *self._on_call_end(event, ended)]
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
            state = self._calls[call_id] = _CallState(self._max_segments, self._matcher)
            state.live = LiveCall(call_id, self._live)
            while len(self._calls) > self._max_calls:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(call_id)
        return state

    def _live_of(self, call: _CallState, call_id: str) -> LiveCall:
        if call.live is None:
            call.live = LiveCall(call_id, self._live)
        return call.live

    def _on_partial(self, segment: PartialSegment) -> list[AssistEvent]:
        call = self._call(segment.call_id)
        state = call.segment(segment.segment_id)
        text = segment.text.strip()
        if state.final or segment.revision < state.last_revision or text == state.last_text or not text:
            return []  # late, stale or unchanged revision: nothing new to say
        state.last_text, state.last_revision = text, segment.revision
        return self._assess(segment, call, state, text, final=False, revision=segment.revision)

    def _on_final(self, segment: FinalSegment) -> list[AssistEvent]:
        call = self._call(segment.call_id)
        state = call.segment(segment.segment_id)
        text = segment.text.strip()
        if state.final and text == state.last_text:
            return []  # the same final delivered again
        state.last_text, state.final = text, True
        # Finals carry no revision; 0 keeps a replayed final's event identical.
        return self._assess(segment, call, state, text, final=True, revision=0)

    def _assess(
        self,
        segment: PartialSegment | FinalSegment,
        call: _CallState,
        state: _SegmentState,
        text: str,
        *,
        final: bool,
        revision: int,
    ) -> list[AssistEvent]:
        matcher = self._matcher  # read once: a hot reload mid-assessment must not mix versions
        now = self._clock()
        call.last_ms = max(call.last_ms, segment.end_ms)
        live = self._live_of(call, segment.call_id)
        out: list[AssistEvent] = list(live.on_segment(segment, text, final=final, now=now))
        # Nothing downstream (scores, rules, snippets, events, the database) sees personal data.
        redaction = redact(text)
        text = redaction.text
        if final and redaction.redacted and isinstance(segment, FinalSegment):
            out.append(audit_event(segment, redaction, now=now))
        compound: float | None = None
        if text and live.should_score(segment, final=final):
            scores = self._scorer.score(text)
            compound = scores.compound
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
            if final and segment.leg == "customer":
                call.customer_sentiment[0] += compound
                call.customer_sentiment[1] += 1
            live.on_sentiment(segment, compound, final=final)
            call.trend = live.customer_trend
        found = matcher.match_all(text, segment.leg, semantic=final or self._semantic_on_partials)
        context = RuleContext(
            call_time_ms=segment.start_ms,
            segment_sentiment=compound,
            call_sentiment=call.call_sentiment,
            call_trend=call.trend,
            fired=frozenset(call.fired_rules),
        )
        candidates = [(m.rule, m.phrase, m.how) for m in found.rules]
        if final:  # rules with no words fire on a durable figure, once per call
            candidates += [
                (rule, "", "condition")
                for rule in matcher.condition_rules
                if rule.applies_to(segment.leg) and rule.id not in call.fired_rules
            ]
        fired_now: list[str] = []
        for rule, phrase, how in candidates:
            if not rule.when.allows(context):
                continue
            event_id = assist_event_id(segment.segment_id, rule.id, matcher.rule_set.version)
            if event_id in state.fired:
                continue
            state.fired.add(event_id)
            fired_now.append(rule.id)
            if rule.kind != "tag":
                common = self._common(segment, rule, phrase, how, event_id, matcher, final=final, now=now)
                out.append(self._triggered(rule, common, text, found))
        call.fired_rules.update(fired_now)
        out.extend(self._check_compliance(segment, call, found, fired_now, final=final, now=now))
        return out

    def _common(
        self,
        segment: PartialSegment | FinalSegment,
        rule: Rule,
        phrase: str,
        how: str,
        event_id: str,
        matcher: RuleMatcher,
        *,
        final: bool,
        now: float,
    ) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "call_id": segment.call_id,
            "leg": segment.leg,
            "segment_id": segment.segment_id,
            "on_final": final,
            "rule_id": rule.id,
            "rule_version": matcher.rule_set.version,
            "matched": phrase,
            "matched_by": how,
            "category": rule.category,
            "segment_emitted_at": segment.times.emitted_at,
            "emitted_at": now,
        }

    def _triggered(
        self, rule: Rule, common: dict[str, Any], text: str, found: TextMatches
    ) -> AgentHint | SupervisorAlert:
        match rule.kind:
            case "hint":
                snippet = self._snippet(rule, text, found)
                knowledge = (
                    {}
                    if snippet is None
                    else {
                        "knowledge_id": snippet.article_id,
                        "knowledge_title": snippet.title,
                        "knowledge_snippet": snippet.text,
                        "knowledge_score": snippet.score,
                    }
                )
                return AgentHint(hint=rule.hint, **common, **knowledge)
            case "alert":
                return SupervisorAlert(severity=rule.severity, message=rule.message, **common)
            case "tag":
                raise AssertionError("tag rules send nothing")
            case unknown:
                assert_never(unknown)

    def _snippet(self, rule: Rule, text: str, found: TextMatches) -> Snippet | None:
        if self._knowledge is None or not rule.knowledge:
            return None
        if rule.knowledge == "auto":
            return self._knowledge.retrieve(text, vector=found.vector)
        return self._knowledge.article(rule.knowledge)

    def _check_compliance(
        self,
        segment: PartialSegment | FinalSegment,
        call: _CallState,
        found: TextMatches,
        fired_now: list[str],
        *,
        final: bool,
        now: float,
    ) -> list[AssistEvent]:
        heard = {step.item.id for step in found.compliance}
        changes = call.compliance.observe(
            leg=segment.leg, start_ms=segment.start_ms, heard=heard, fired=fired_now
        )
        if not changes:
            return []
        where = {
            "call_id": segment.call_id,
            "rule_version": call.compliance_version,
            "emitted_at": now,
        }
        out: list[AssistEvent] = [
            state_event(
                call.compliance,
                changes,
                segment_id=segment.segment_id,
                segment_emitted_at=segment.times.emitted_at,
                **where,
            )
        ]
        out.extend(
            miss_alert(
                change,
                leg=segment.leg,
                segment_id=segment.segment_id,
                segment_emitted_at=segment.times.emitted_at,
                on_final=final,
                **where,
            )
            for change in changes
            if change.status == "missed"
        )
        return out

    def _on_call_end(self, event: TranscriptCallEnded, call: _CallState) -> list[AssistEvent]:
        changes = call.compliance.end(at_ms=call.last_ms)
        if not call.compliance.steps:
            return []
        now = self._clock()
        where = {"call_id": event.call_id, "rule_version": call.compliance_version, "emitted_at": now}
        out: list[AssistEvent] = [state_event(call.compliance, changes, call_ended=True, **where)]
        out.extend(
            miss_alert(
                change,
                leg=change.item.leg if change.item.leg != "any" else "agent",
                segment_id=call_end_segment_id(event.call_id),
                segment_emitted_at=event.ended_at,
                on_final=True,
                **where,
            )
            for change in changes
            if change.status == "missed"
        )
        return out
