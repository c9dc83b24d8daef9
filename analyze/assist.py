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
from typing import Any, assert_never

from analyze.call_state import CallState, SegmentState, text_digest
from analyze.compliance import call_end_segment_id, miss_alert, state_event
from analyze.events import AgentHint, AssistEvent, Sentiment, SupervisorAlert, assist_event_id
from analyze.knowledge import KnowledgeBase, Snippet
from analyze.live import LiveSettings, audit_event
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
        self._calls: OrderedDict[str, CallState] = OrderedDict()
        # Calls that ended here, newest last: delivery is at least once, and a call's records
        # delivered again after its end must not start it over (a second, different closing).
        self._ended: OrderedDict[str, None] = OrderedDict()

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def rules(self) -> RuleMatcher:
        return self._matcher

    def use_rules(self, matcher: RuleMatcher) -> None:
        """Swap in a new compiled rule set; the next assessment uses it (one reference assignment)."""
        self._matcher = matcher

    def knows(self, call_id: str) -> bool:
        return call_id in self._calls

    def snapshot(self, call_id: str) -> dict[str, Any] | None:
        """The call's state as a versioned dict (CallState.to_dict), or None for an unknown call."""
        state = self._calls.get(call_id)
        return None if state is None else state.to_dict()

    def restore(self, call_id: str, data: dict[str, Any]) -> None:
        """Carry on a call from a snapshot; raises StateFormatError for one it cannot read."""
        state = CallState.from_dict(
            call_id, data, max_segments=self._max_segments, matcher=self._matcher, live=self._live
        )
        self._remember(call_id, state)

    def has_ended(self, call_id: str) -> bool:
        return call_id in self._ended

    def mark_ended(self, call_id: str) -> None:
        """Ignore the call's records from now on (it ended; e.g. as the state table says)."""
        self._calls.pop(call_id, None)
        self._ended[call_id] = None
        self._ended.move_to_end(call_id)
        while len(self._ended) > self._max_calls:
            self._ended.popitem(last=False)

    def forget_calls(self) -> None:
        """Drop every call's state, e.g. when the calls' partitions may have moved to another worker."""
        self._calls.clear()

    def on_event(self, event: TranscriptEvent) -> list[AssistEvent]:
        if event.call_id in self._ended:
            return []  # delivered again after the call's end: its events went out already
        match event:
            case TranscriptCallStarted(call_id=call_id):
                call = self._call(call_id)
                call.live.started_at = event.started_at
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
                self.mark_ended(call_id)
                if ended is None:
                    return []
                live = ended.live.on_end(event, now=self._clock())
                return [*live, *self._on_call_end(event, ended)]
            case PartialSegment():
                return self._on_partial(event)
            case FinalSegment():
                return self._on_final(event)
            case LegError():
                return []
        return []

    def _call(self, call_id: str) -> CallState:
        state = self._calls.get(call_id)
        if state is None:
            state = CallState(call_id, self._max_segments, self._matcher, self._live)
            self._remember(call_id, state)
        else:
            self._calls.move_to_end(call_id)
        return state

    def _remember(self, call_id: str, state: CallState) -> None:
        self._calls[call_id] = state
        self._calls.move_to_end(call_id)
        # Calls whose call.ended never arrives (lost producer, reassigned partition) age out.
        while len(self._calls) > self._max_calls:
            self._calls.popitem(last=False)

    def _on_partial(self, segment: PartialSegment) -> list[AssistEvent]:
        call = self._call(segment.call_id)
        state = call.segment(segment.segment_id)
        text = segment.text.strip()
        digest = text_digest(text)
        if state.final or segment.revision < state.last_revision or digest == state.last_digest or not text:
            return []  # late, stale or unchanged revision: nothing new to say
        state.last_digest, state.last_revision = digest, segment.revision
        return self._assess(segment, call, state, text, final=False, revision=segment.revision)

    def _on_final(self, segment: FinalSegment) -> list[AssistEvent]:
        call = self._call(segment.call_id)
        state = call.segment(segment.segment_id)
        text = segment.text.strip()
        digest = text_digest(text)
        if state.final and digest == state.last_digest:
            return []  # the same final delivered again
        state.last_digest, state.final = digest, True
        # Finals carry no revision; 0 keeps a replayed final's event identical.
        return self._assess(segment, call, state, text, final=True, revision=0)

    def _assess(
        self,
        segment: PartialSegment | FinalSegment,
        call: CallState,
        state: SegmentState,
        text: str,
        *,
        final: bool,
        revision: int,
    ) -> list[AssistEvent]:
        matcher = self._matcher  # read once: a hot reload mid-assessment must not mix versions
        now = self._clock()
        call.last_ms = max(call.last_ms, segment.end_ms)
        live = call.live
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
        call: CallState,
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

    def _on_call_end(self, event: TranscriptCallEnded, call: CallState) -> list[AssistEvent]:
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
