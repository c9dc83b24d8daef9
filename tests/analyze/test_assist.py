"""Assist policy: which sentiment, hint and alert events a stream of transcript events causes."""

from __future__ import annotations

import pytest

from analyze.assist import AssistPolicy
from analyze.events import AgentHint, AssistEvent, Sentiment, SupervisorAlert, assist_event_id
from analyze.rules import RuleMatcher, parse_rules
from analyze.sentiment import SentimentScores
from ingest.events import Leg
from tests.analyze.policies import ticking_policy
from transcribe.events import (
    FinalSegment,
    LegError,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    segment_id,
)

RULES = {
    "version": "v3",
    "rules": [
        {
            "id": "retention-cancel",
            "kind": "hint",
            "leg": "customer",
            "phrases": ["cancel my account"],
            "hint": "Offer the loyalty discount.",
        },
        {
            "id": "escalation-request",
            "kind": "alert",
            "leg": "customer",
            "phrases": ["speak to a manager"],
            "message": "Customer asks for a manager.",
            "severity": "critical",
        },
    ],
}


class FakeScorer:
    """Scores by counting 'good' and 'bad'; records every text it was asked to score."""

    def __init__(self) -> None:
        self.scored: list[str] = []

    def score(self, text: str) -> SentimentScores:
        self.scored.append(text)
        words = text.lower().split()
        compound = max(-1.0, min(1.0, 0.5 * (words.count("good") - words.count("bad"))))
        return SentimentScores(compound=compound, positive=0.0, negative=0.0, neutral=1.0)


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def policy(scorer: FakeScorer) -> AssistPolicy:
    return ticking_policy(parse_rules(RULES), scorer)


def _times(emitted_at: float = 500.0) -> StageTimes:
    return StageTimes(
        audio_captured_at=emitted_at - 1, audio_received_at=emitted_at - 0.5, emitted_at=emitted_at
    )


def partial(text: str, revision: int, *, call_id: str = "c1", leg: Leg = "customer", start_ms: int = 0):
    return PartialSegment(
        call_id=call_id,
        leg=leg,
        segment_id=segment_id(call_id, leg, start_ms),
        start_ms=start_ms,
        end_ms=start_ms + 1000,
        text=text,
        revision=revision,
        times=_times(500.0 + revision),
    )


def final(text: str, *, call_id: str = "c1", leg: Leg = "customer", start_ms: int = 0) -> FinalSegment:
    return FinalSegment(
        call_id=call_id,
        leg=leg,
        segment_id=segment_id(call_id, leg, start_ms),
        start_ms=start_ms,
        end_ms=start_ms + 1000,
        text=text,
        times=_times(600.0),
    )


def _triggered(events: list[AssistEvent]) -> list[AgentHint | SupervisorAlert]:
    return [e for e in events if isinstance(e, AgentHint | SupervisorAlert)]


def test_hint_fires_on_the_partial_and_not_again_on_later_partials_or_the_final(policy: AssistPolicy) -> None:
    first = policy.on_event(partial("I want to cancel my account", 0))
    later = policy.on_event(partial("I want to cancel my account today", 1))
    at_final = policy.on_event(final("I want to cancel my account today."))

    (hint,) = _triggered(first)
    assert isinstance(hint, AgentHint)
    assert (hint.rule_id, hint.rule_version, hint.matched) == ("retention-cancel", "v3", "cancel my account")
    assert hint.hint == "Offer the loyalty discount."
    assert (hint.call_id, hint.leg, hint.on_final) == ("c1", "customer", False)
    assert hint.segment_id == segment_id("c1", "customer", 0)
    assert _triggered(later) == [] and _triggered(at_final) == []


def test_rule_first_heard_in_the_final_fires_on_the_final(policy: AssistPolicy) -> None:
    policy.on_event(partial("can I speak", 0))
    events = policy.on_event(final("can I speak to a manager"))
    (alert,) = _triggered(events)
    assert isinstance(alert, SupervisorAlert)
    assert alert.on_final and alert.severity == "critical" and alert.message == "Customer asks for a manager."
    assert alert.segment_emitted_at == 600.0  # the final's own emission time, for latency


def test_event_id_is_derived_from_segment_rule_and_rule_version(scorer: FakeScorer) -> None:
    expected = assist_event_id(segment_id("c1", "customer", 0), "retention-cancel", "v3")
    ids = []
    for _ in range(2):  # two independent workers, e.g. before and after a restart
        fresh = AssistPolicy(RuleMatcher(parse_rules(RULES)), scorer)
        (hint,) = _triggered(fresh.on_event(final("cancel my account")))
        ids.append(hint.event_id)
    assert ids == [expected, expected]


def test_same_rule_fires_again_in_a_new_turn(policy: AssistPolicy) -> None:
    first = _triggered(policy.on_event(final("cancel my account", start_ms=0)))
    second = _triggered(policy.on_event(final("I said cancel my account", start_ms=5000)))
    assert len(first) == 1 and len(second) == 1
    assert first[0].event_id != second[0].event_id


def test_rules_respect_the_leg_that_spoke(policy: AssistPolicy) -> None:
    assert _triggered(policy.on_event(final("do you want to cancel my account?", leg="agent"))) == []


def test_partial_sentiment_is_skipped_when_the_text_did_not_change(
    policy: AssistPolicy, scorer: FakeScorer
) -> None:
    a = policy.on_event(partial("this is bad", 0))
    b = policy.on_event(partial("this is bad", 1))
    c = policy.on_event(partial("this is bad  ", 2))  # whitespace only
    d = policy.on_event(partial("this is bad bad", 3))
    assert [len(x) for x in (a, b, c, d)] == [1, 0, 0, 1]
    assert scorer.scored == ["this is bad", "this is bad bad"]
    sentiment = d[0]
    assert isinstance(sentiment, Sentiment)
    assert (sentiment.final, sentiment.revision, sentiment.compound) == (False, 3, -1.0)
    assert (sentiment.segment_emitted_at, sentiment.emitted_at) == (503.0, 1001.0)


def test_final_is_always_scored_even_with_the_partial_text(policy: AssistPolicy) -> None:
    policy.on_event(partial("good good", 0))
    (sentiment,) = policy.on_event(final("good good"))
    assert isinstance(sentiment, Sentiment)
    assert sentiment.final and sentiment.revision == 0 and sentiment.compound == 1.0


def test_redelivered_final_and_late_partial_produce_nothing(policy: AssistPolicy) -> None:
    assert policy.on_event(final("good")) != []
    assert policy.on_event(final("good")) == []
    assert policy.on_event(partial("good and more", 5)) == []


def test_stale_partial_revision_is_ignored(policy: AssistPolicy) -> None:
    policy.on_event(partial("good morning", 2))
    assert policy.on_event(partial("good", 1)) == []


def test_call_state_is_cleared_when_the_call_ends(policy: AssistPolicy) -> None:
    policy.on_event(TranscriptCallStarted(call_id="c1", started_at=1.0))
    policy.on_event(partial("cancel my account", 0))
    policy.on_event(TranscriptCallStarted(call_id="c2", started_at=1.0))
    assert policy.active_calls == 2
    # The call's closing summaries (conversation metrics, sentiment trends), then nothing is kept.
    closing = policy.on_event(TranscriptCallEnded(call_id="c1", ended_at=2.0))
    assert {e.type for e in closing} == {"conversation.metrics", "sentiment.trend"}
    assert all(e.call_ended for e in closing)  # type: ignore[union-attr]
    assert policy.active_calls == 1
    # Records of the call delivered again after its end are ignored, its end included: a fresh
    # state would close the call a second time with other figures.
    assert policy.has_ended("c1")
    assert policy.on_event(partial("cancel my account", 0)) == []
    assert policy.on_event(final("cancel my account")) == []
    assert policy.on_event(TranscriptCallEnded(call_id="c1", ended_at=2.0)) == []
    assert policy.active_calls == 1


def test_a_replay_gives_the_same_event_ids(policy: AssistPolicy, scorer: FakeScorer) -> None:
    (first,) = _triggered(policy.on_event(partial("cancel my account", 0)))
    replay = AssistPolicy(RuleMatcher(parse_rules(RULES)), scorer, clock=lambda: 123.0)
    (again,) = _triggered(replay.on_event(partial("cancel my account", 0)))
    assert again.event_id == first.event_id
    assert first.event_id == assist_event_id(segment_id("c1", "customer", 0), "retention-cancel", "v3")


def test_ended_calls_are_remembered_up_to_the_call_bound(scorer: FakeScorer) -> None:
    policy = AssistPolicy(RuleMatcher(parse_rules(RULES)), scorer, max_calls=2)
    for call_id in ("a", "b", "c"):
        policy.on_event(TranscriptCallEnded(call_id=call_id, ended_at=2.0))
    assert [policy.has_ended(c) for c in ("a", "b", "c")] == [False, True, True]
    policy.mark_ended("d")
    assert not policy.has_ended("b")


def test_calls_are_tracked_separately(policy: AssistPolicy) -> None:
    a = _triggered(policy.on_event(partial("cancel my account", 0, call_id="c1")))
    b = _triggered(policy.on_event(partial("cancel my account", 0, call_id="c2")))
    assert [e.call_id for e in a + b] == ["c1", "c2"]


def test_leg_errors_and_empty_text_produce_nothing(policy: AssistPolicy) -> None:
    assert policy.on_event(LegError(call_id="c1", leg="agent", code="decode", retryable=False, at=1.0)) == []
    assert policy.on_event(partial("   ", 0)) == []
    assert policy.on_event(final("")) == []


def test_open_calls_are_bounded_and_the_oldest_is_forgotten(scorer: FakeScorer) -> None:
    small = AssistPolicy(RuleMatcher(parse_rules(RULES)), scorer, max_calls=2)
    for call_id in ("c1", "c2", "c3"):
        small.on_event(TranscriptCallStarted(call_id=call_id, started_at=1.0))
    assert small.active_calls == 2
