"""The assist policy's live outputs: redaction before anything is emitted, audit, metrics, trends."""

from __future__ import annotations

from analyze.assist import AssistPolicy
from analyze.events import ConversationMetrics, RedactionAudit, Sentiment, SentimentTrend
from analyze.live import LiveSettings
from analyze.rules import RuleMatcher, load_rules
from analyze.sentiment import VaderScorer
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    segment_id,
)

CARD = "4111 1111 1111 1111"


def _policy(**live: object) -> AssistPolicy:
    clock = iter(range(1_000, 100_000)).__next__
    return AssistPolicy(
        RuleMatcher(load_rules()), VaderScorer(), clock=lambda: float(clock()), live=LiveSettings(**live)
    )


def _times(at: float) -> StageTimes:
    return StageTimes(audio_captured_at=at, audio_received_at=at, emitted_at=at)


def _partial(text: str, revision: int, *, start_ms: int = 0, end_ms: int = 1_000, at: float = 0.0):
    sid = segment_id("c1", "customer", start_ms)
    return PartialSegment(
        call_id="c1", leg="customer", segment_id=sid, start_ms=start_ms, end_ms=end_ms, text=text,
        revision=revision, times=_times(at),
    )  # fmt: skip


def _final(text: str, *, leg: str = "customer", start_ms: int = 0, end_ms: int = 1_000) -> FinalSegment:
    sid = segment_id("c1", leg, start_ms)  # type: ignore[arg-type]
    return FinalSegment(
        call_id="c1", leg=leg, segment_id=sid, start_ms=start_ms, end_ms=end_ms, text=text, times=_times(0.0)
    )  # type: ignore[arg-type]


def test_no_card_number_reaches_any_assist_event_and_the_final_gets_an_audit() -> None:
    policy = _policy()
    out = policy.on_event(_partial(f"my card is {CARD}", 0))
    out += policy.on_event(_final(f"My card is {CARD}, and I want to cancel my account."))
    assert all("4111" not in e.to_bytes().decode() for e in out)
    (audit,) = [e for e in out if isinstance(e, RedactionAudit)]
    assert audit.counts == {"card": 1}
    assert any(e.type == "assist.hint" for e in out)  # rules still see the rest of the words


def test_partial_sentiment_is_throttled_per_turn_and_the_final_is_always_scored() -> None:
    policy = _policy(partial_interval_s=1.0)
    scored = []
    for revision, (text, at) in enumerate(
        [("I", 0.0), ("I am", 0.3), ("I am very", 0.6), ("I am very upset", 1.2)]
    ):
        scored += [e for e in policy.on_event(_partial(text, revision, at=at)) if isinstance(e, Sentiment)]
    assert [e.revision for e in scored] == [0, 3]
    assert [e for e in policy.on_event(_final("I am very upset.")) if isinstance(e, Sentiment)]


def test_metrics_and_trends_are_emitted_every_interval_of_call_time_and_at_the_end() -> None:
    policy = _policy(metrics_interval_ms=10_000)
    policy.on_event(TranscriptCallStarted(call_id="c1", started_at=100.0))
    first = policy.on_event(_final("hello, how can I help", leg="agent", start_ms=0, end_ms=4_000))
    assert not [e for e in first if isinstance(e, ConversationMetrics)]
    tick = policy.on_event(_final("this is ridiculous", start_ms=5_000, end_ms=11_000))
    (metrics,) = [e for e in tick if isinstance(e, ConversationMetrics)]
    assert (metrics.elapsed_ms, metrics.agent.talk_ms, metrics.customer.words) == (11_000, 4_000, 3)
    assert {e.scope for e in tick if isinstance(e, SentimentTrend)} == {"agent", "customer", "call"}
    closing = policy.on_event(TranscriptCallEnded(call_id="c1", ended_at=120.0))
    (last,) = [e for e in closing if isinstance(e, ConversationMetrics)]
    assert last.call_ended and last.elapsed_ms == 20_000  # the call's real length, from its start and end
    assert last.longest_silence_ms == 9_000


def test_the_customer_trend_feeds_the_rule_conditions() -> None:
    policy = _policy()
    policy.on_event(_final("thank you, that is great", start_ms=0, end_ms=5_000))
    policy.on_event(_final("this is terrible and I am furious", start_ms=60_000, end_ms=70_000))
    call = policy._calls["c1"]
    assert call.trend is not None and call.trend < -0.5
