"""Rule conditions: leg, time into the call, sentiment of the segment and the call, earlier rules."""

from __future__ import annotations

import textwrap

import pytest

from analyze.assist import AssistPolicy
from analyze.events import AgentHint, AssistEvent, SupervisorAlert
from analyze.rules import Conditions, RuleContext, RuleError, parse_rules_yaml
from analyze.sentiment import SentimentScores
from ingest.events import Leg
from tests.analyze.policies import ticking_policy
from transcribe.events import FinalSegment, StageTimes, segment_id


def test_no_conditions_always_allow() -> None:
    assert Conditions().allows(RuleContext(call_time_ms=0))


@pytest.mark.parametrize(
    ("conditions", "context", "allowed"),
    [
        (Conditions(min_call_time_ms=60_000), RuleContext(call_time_ms=59_999), False),
        (Conditions(min_call_time_ms=60_000), RuleContext(call_time_ms=60_000), True),
        (Conditions(max_call_time_ms=30_000), RuleContext(call_time_ms=30_001), False),
        (Conditions(segment_sentiment_below=-0.5), RuleContext(0, segment_sentiment=-0.6), True),
        (Conditions(segment_sentiment_below=-0.5), RuleContext(0, segment_sentiment=-0.5), False),
        (Conditions(segment_sentiment_below=-0.5), RuleContext(0), False),  # unknown: not allowed
        (Conditions(segment_sentiment_above=0.5), RuleContext(0, segment_sentiment=0.7), True),
        (Conditions(call_sentiment_below=-0.2), RuleContext(0, call_sentiment=-0.3), True),
        (Conditions(call_sentiment_above=0.2), RuleContext(0, call_sentiment=0.1), False),
        (Conditions(call_trend_below=-0.5), RuleContext(0, call_trend=-0.8), True),
        (Conditions(call_trend_below=-0.5), RuleContext(0, call_trend=None), False),
        (Conditions(after_rules=("a", "b")), RuleContext(0, fired={"b"}), True),
        (Conditions(after_rules=("a",)), RuleContext(0, fired=set()), False),
        (Conditions(unless_rules=("a",)), RuleContext(0, fired={"a"}), False),
        (Conditions(unless_rules=("a",)), RuleContext(0, fired={"c"}), True),
    ],
)
def test_each_condition_bounds_what_it_names(conditions, context, allowed) -> None:
    assert conditions.allows(context) is allowed


RULES = textwrap.dedent(
    """
    version: "cond-1"
    rules:
      - id: escalation
        kind: alert
        leg: customer
        phrases: [speak to a manager]
        message: Manager requested.
      - id: angry-after-escalation
        kind: alert
        leg: customer
        phrases: [ridiculous]
        when: {after_rules: [escalation], segment_sentiment_below: -0.4}
        severity: critical
        message: Still angry after asking for a manager.
      - id: late-upsell
        kind: hint
        leg: agent
        phrases: [anything else]
        when: {min_call_time_s: 60, unless_rules: [escalation]}
        hint: Offer the premium plan.
      - id: unhappy-call
        kind: alert
        leg: customer
        when: {call_sentiment_below: -0.3}
        category: sentiment
        message: The customer has been unhappy for a while.
    """
)


class WordScorer:
    """'bad' is -0.5, 'awful' is -0.9; everything else neutral."""

    def score(self, text: str) -> SentimentScores:
        words = text.lower().split()
        compound = -0.9 if "awful" in words else -0.5 if "bad" in words else 0.0
        return SentimentScores(compound=compound, positive=0.0, negative=0.0, neutral=1.0)


@pytest.fixture
def policy() -> AssistPolicy:
    return ticking_policy(parse_rules_yaml(RULES), WordScorer())


def final(text: str, leg: Leg, start_ms: int, call_id: str = "c1") -> FinalSegment:
    return FinalSegment(
        call_id=call_id,
        leg=leg,
        segment_id=segment_id(call_id, leg, start_ms),
        start_ms=start_ms,
        end_ms=start_ms + 1000,
        text=text,
        times=StageTimes(audio_captured_at=1.0, audio_received_at=1.0, emitted_at=2.0),
    )


def _fired(events: list[AssistEvent]) -> list[str]:
    return [e.rule_id for e in events if isinstance(e, AgentHint | SupervisorAlert)]


def test_rule_fires_only_after_the_rule_it_depends_on(policy: AssistPolicy) -> None:
    assert _fired(policy.on_event(final("this is ridiculous and awful", "customer", 1_000))) == [
        "unhappy-call"
    ]
    assert _fired(policy.on_event(final("let me speak to a manager", "customer", 5_000))) == ["escalation"]
    assert _fired(policy.on_event(final("ridiculous, awful", "customer", 9_000))) == [
        "angry-after-escalation"
    ]


def test_dependent_rule_also_needs_its_sentiment_bound(policy: AssistPolicy) -> None:
    policy.on_event(final("let me speak to a manager", "customer", 1_000))
    assert _fired(policy.on_event(final("that is ridiculous", "customer", 5_000))) == []  # neutral


def test_time_and_unless_conditions_gate_a_hint(policy: AssistPolicy) -> None:
    assert _fired(policy.on_event(final("anything else", "agent", 30_000))) == []  # too early
    assert _fired(policy.on_event(final("anything else", "agent", 61_000))) == ["late-upsell"]
    policy.on_event(final("speak to a manager", "customer", 1_000, call_id="c2"))
    assert _fired(policy.on_event(final("anything else", "agent", 61_000, call_id="c2"))) == []


def test_a_rule_without_words_fires_once_per_call_when_its_condition_first_holds(
    policy: AssistPolicy,
) -> None:
    assert _fired(policy.on_event(final("fine thanks", "customer", 1_000))) == []  # mean 0
    # Mean of the customer's finals: (0 - 0.9) / 2 = -0.45, below -0.3.
    (alert,) = [
        e for e in policy.on_event(final("awful", "customer", 4_000)) if isinstance(e, SupervisorAlert)
    ]
    assert (alert.rule_id, alert.matched, alert.matched_by, alert.category) == (
        "unhappy-call",
        "",
        "condition",
        "sentiment",
    )
    assert alert.rule_version == "cond-1"
    assert _fired(policy.on_event(final("still awful", "customer", 8_000))) == []  # once per call


def test_conditions_with_unknown_rules_or_bounds_are_rejected() -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules_yaml(
            textwrap.dedent(
                """
                version: "1"
                rules:
                  - id: a
                    kind: alert
                    leg: any
                    phrases: [x]
                    message: m
                    when: {after_rules: [nope], segment_sentiment_below: -3, mood: bad}
                  - id: b
                    kind: alert
                    leg: any
                    message: m
                """
            )
        )
    assert caught.value.problems == (
        "rules[0] (a): unknown conditions: mood",
        "rules[0] (a): 'segment_sentiment_below' must be a number from -1 to 1",
        "rules[1] (b): 'phrases' must be a non-empty list",
    )
