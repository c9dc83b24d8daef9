"""Live conversation metrics from turn timings: talk, silence, overtalk, interruptions, rate."""

from __future__ import annotations

import pytest

from analyze.conversation import ConversationTracker, intersection, union


def _tracker(turns: list[tuple[str, int, int, int]], *, elapsed_ms: int | None = None) -> ConversationTracker:
    tracker = ConversationTracker(min_interruption_overlap_ms=500)
    for i, (leg, start, end, words) in enumerate(turns):
        tracker.observe(leg, f"t{i}", start, end, words, final=True)  # type: ignore[arg-type]
    if elapsed_ms is not None:
        tracker.extend_to(elapsed_ms)
    return tracker


def test_talk_and_non_talk_time_per_leg_and_for_the_call() -> None:
    f = _tracker([("agent", 1_000, 4_000, 9), ("customer", 5_000, 11_000, 12)], elapsed_ms=12_000).figures()
    assert (f.agent.talk_ms, f.customer.talk_ms) == (3_000, 6_000)
    assert (f.agent.non_talk_ms, f.customer.non_talk_ms) == (9_000, 6_000)
    assert (f.talk_ms, f.non_talk_ms) == (9_000, 3_000)


def test_longest_silence_counts_the_start_the_gaps_and_the_end_of_the_call() -> None:
    f = _tracker([("agent", 500, 2_000, 3), ("customer", 6_000, 7_000, 2)], elapsed_ms=8_000).figures()
    assert f.longest_silence_ms == 4_000  # between 2.0 s and 6.0 s
    assert _tracker([("agent", 0, 1_000, 2)], elapsed_ms=9_000).figures().longest_silence_ms == 8_000


def test_overtalk_and_an_interruption_of_the_agent_by_the_customer() -> None:
    f = _tracker([("agent", 0, 5_000, 10), ("customer", 3_000, 8_000, 10)]).figures()
    assert f.overtalk_ms == 2_000
    assert (f.customer.interruptions, f.agent.interruptions, f.interruptions) == (1, 0, 1)


def test_a_short_backchannel_over_the_other_leg_is_overtalk_but_not_an_interruption() -> None:
    f = _tracker([("agent", 0, 5_000, 10), ("customer", 2_000, 2_300, 1)]).figures()
    assert f.overtalk_ms == 300
    assert f.interruptions == 0


def test_speaking_rate_is_words_per_minute_of_the_legs_own_talk() -> None:
    f = _tracker([("agent", 0, 30_000, 80), ("agent", 40_000, 70_000, 70)]).figures()
    assert f.agent.words_per_minute == pytest.approx(150.0)
    assert f.customer.words_per_minute is None  # has not spoken yet
    assert f.agent.longest_turn_ms == 30_000


def test_partials_stretch_a_turn_and_its_final_replaces_them() -> None:
    tracker = ConversationTracker()
    tracker.observe("customer", "t1", 1_000, 1_500, 1, final=False)
    tracker.observe("customer", "t1", 1_000, 2_500, 4, final=False)
    assert tracker.figures().customer.talk_ms == 1_500
    tracker.observe("customer", "t1", 1_000, 2_200, 5, final=True)
    tracker.observe("customer", "t1", 1_000, 1_200, 1, final=False)  # late partial: ignored
    f = tracker.figures()
    assert (f.customer.talk_ms, f.customer.words) == (1_200, 5)


def test_span_helpers_merge_and_intersect() -> None:
    assert union([(5, 7), (0, 2), (1, 3)]) == [(0, 3), (5, 7)]
    assert intersection([(0, 3), (5, 7)], [(2, 6)]) == [(2, 3), (5, 6)]
