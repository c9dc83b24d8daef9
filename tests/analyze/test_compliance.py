"""The live compliance checklist: when a step is met, missed or not applicable, and what is sent.

Time is the call position carried by segments (start_ms), so nothing here waits on a clock.
"""

from __future__ import annotations

import pytest

from analyze.assist import AssistPolicy
from analyze.compliance import ComplianceTracker, call_end_segment_id
from analyze.events import ComplianceState, SupervisorAlert
from analyze.rules import RuleMatcher, parse_rules
from analyze.sentiment import SentimentScores
from ingest.events import Leg
from tests.analyze.policies import ticking_policy
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    segment_id,
)

RULES = {
    "version": "c1",
    "rules": [
        {"id": "account-details", "kind": "tag", "leg": "agent", "phrases": ["your balance is"]},
    ],
    "compliance": [
        {
            "id": "recording-disclosure",
            "leg": "agent",
            "phrases": ["this call may be recorded"],
            "fuzzy": True,
            "within_s": 30,
            "severity": "critical",
            "message": "No recording disclosure.",
        },
        {
            "id": "identity-verification",
            "leg": "agent",
            "phrases": ["verify your identity"],
            "before_rules": ["account-details"],
            "message": "Account discussed before verification.",
        },
    ],
}
ITEMS = parse_rules(RULES).compliance


class NeutralScorer:
    def score(self, text: str) -> SentimentScores:
        return SentimentScores(compound=0.0, positive=0.0, negative=0.0, neutral=1.0)


@pytest.fixture
def policy() -> AssistPolicy:
    return ticking_policy(parse_rules(RULES), NeutralScorer())


def final(text: str, leg: Leg, start_ms: int, *, call_id: str = "c1") -> FinalSegment:
    times = StageTimes(audio_captured_at=1.0, audio_received_at=1.0, emitted_at=500.0)
    return FinalSegment(
        call_id=call_id,
        leg=leg,
        segment_id=segment_id(call_id, leg, start_ms),
        start_ms=start_ms,
        end_ms=start_ms + 2000,
        text=text,
        times=times,
    )


def _statuses(tracker: ComplianceTracker) -> dict[str, str]:
    return {s.item_id: s.status for s in tracker.steps}


def test_a_step_heard_in_time_is_met() -> None:
    tracker = ComplianceTracker(ITEMS)
    (change,) = tracker.observe(leg="agent", start_ms=12_000, heard={"recording-disclosure"}, fired=())
    assert (change.item.id, change.status, change.at_ms) == ("recording-disclosure", "met", 12_000)
    assert _statuses(tracker) == {"recording-disclosure": "met", "identity-verification": "pending"}
    # Met is final: hearing it again changes nothing.
    assert tracker.observe(leg="agent", start_ms=50_000, heard={"recording-disclosure"}, fired=()) == []


def test_a_timed_step_is_missed_once_its_leg_moves_past_the_deadline() -> None:
    tracker = ComplianceTracker(ITEMS)
    assert tracker.observe(leg="agent", start_ms=29_000, heard=(), fired=()) == []
    # The customer's leg passing 30 s says nothing about what the agent said in time.
    assert tracker.observe(leg="customer", start_ms=31_000, heard=(), fired=()) == []
    (change,) = tracker.observe(leg="agent", start_ms=31_000, heard=(), fired=())
    assert (change.item.id, change.status, change.at_ms) == ("recording-disclosure", "missed", 30_000)


def test_a_step_said_too_late_is_still_missed() -> None:
    tracker = ComplianceTracker(ITEMS)
    (change,) = tracker.observe(leg="agent", start_ms=40_000, heard={"recording-disclosure"}, fired=())
    assert change.status == "missed"


def test_a_step_due_before_a_rule_is_missed_when_that_rule_fires_first() -> None:
    tracker = ComplianceTracker(ITEMS)
    (change,) = tracker.observe(leg="agent", start_ms=5_000, heard=(), fired={"account-details"})
    assert (change.item.id, change.status) == ("identity-verification", "missed")


def test_heard_in_the_same_segment_as_the_rule_counts_as_in_time() -> None:
    tracker = ComplianceTracker(ITEMS)
    (change,) = tracker.observe(
        leg="agent", start_ms=5_000, heard={"identity-verification"}, fired={"account-details"}
    )
    assert change.status == "met"


def test_at_call_end_timed_steps_are_missed_and_untriggered_ones_not_applicable() -> None:
    tracker = ComplianceTracker(ITEMS)
    changes = tracker.end(at_ms=20_000)
    assert [(c.item.id, c.status, c.at_ms) for c in changes] == [
        ("recording-disclosure", "missed", 20_000),
        ("identity-verification", "not_applicable", 20_000),
    ]


def test_policy_sends_the_checklist_at_start_and_on_each_change(policy: AssistPolicy) -> None:
    (start,) = policy.on_event(TranscriptCallStarted(call_id="c1", started_at=1.0))
    assert isinstance(start, ComplianceState)
    assert [(s.item_id, s.status) for s in start.steps] == [
        ("recording-disclosure", "pending"),
        ("identity-verification", "pending"),
    ]
    assert start.changed == () and start.rule_version == "c1"

    events = policy.on_event(final("Hello, this call may be recorded for training.", "agent", 2_000))
    (state,) = [e for e in events if isinstance(e, ComplianceState)]
    assert state.changed == ("recording-disclosure",)
    assert state.segment_id == segment_id("c1", "agent", 2_000)
    assert [s.status for s in state.steps] == ["met", "pending"]
    assert not [e for e in events if isinstance(e, SupervisorAlert)]


def test_policy_alerts_a_supervisor_when_a_step_is_missed(policy: AssistPolicy) -> None:
    policy.on_event(TranscriptCallStarted(call_id="c1", started_at=1.0))
    policy.on_event(final("this call may be recorded", "agent", 1_000))
    events = policy.on_event(final("I see your balance is forty dollars", "agent", 8_000))
    (alert,) = [e for e in events if isinstance(e, SupervisorAlert)]
    assert (alert.rule_id, alert.rule_version, alert.category, alert.matched_by) == (
        "identity-verification",
        "c1",
        "compliance",
        "compliance",
    )
    assert alert.message == "Account discussed before verification." and alert.leg == "agent"
    (state,) = [e for e in events if isinstance(e, ComplianceState)]
    assert [s.status for s in state.steps] == ["met", "missed"]


def test_policy_closes_the_checklist_when_the_call_ends(policy: AssistPolicy) -> None:
    policy.on_event(TranscriptCallStarted(call_id="c1", started_at=1.0))
    policy.on_event(final("how can I help", "agent", 0))
    events = policy.on_event(TranscriptCallEnded(call_id="c1", ended_at=99.0))
    (state,) = [e for e in events if isinstance(e, ComplianceState)]
    (alert,) = [e for e in events if isinstance(e, SupervisorAlert)]
    assert isinstance(state, ComplianceState) and state.call_ended
    assert [s.status for s in state.steps] == ["missed", "not_applicable"]
    assert isinstance(alert, SupervisorAlert) and alert.rule_id == "recording-disclosure"
    assert alert.segment_id == call_end_segment_id("c1") and alert.severity == "critical"
    assert alert.segment_emitted_at == 99.0


def test_checklist_events_are_the_same_on_a_replay() -> None:
    def run() -> list[str]:
        fresh = AssistPolicy(RuleMatcher(parse_rules(RULES)), NeutralScorer(), clock=lambda: 5.0)
        out = fresh.on_event(TranscriptCallStarted(call_id="c1", started_at=1.0))
        out += fresh.on_event(final("this call may be recorded", "agent", 1_000))
        out += fresh.on_event(TranscriptCallEnded(call_id="c1", ended_at=9.0))
        return [e.event_id for e in out if isinstance(e, ComplianceState | SupervisorAlert)]

    first = run()
    assert first == run() and len(set(first)) == len(first) == 3


def test_a_step_heard_on_a_partial_is_met_before_the_turn_ends(policy: AssistPolicy) -> None:
    partial = PartialSegment(
        call_id="c1",
        leg="agent",
        segment_id=segment_id("c1", "agent", 0),
        start_ms=0,
        end_ms=1500,
        text="this call may be recorded",
        revision=0,
        times=StageTimes(audio_captured_at=1.0, audio_received_at=1.0, emitted_at=2.0),
    )
    (state,) = [e for e in policy.on_event(partial) if isinstance(e, ComplianceState)]
    assert state.changed == ("recording-disclosure",)
