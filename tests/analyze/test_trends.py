"""Sentiment trend per quarter of the call, rolling window, and the partial throttle."""

from __future__ import annotations

import pytest

from analyze.trends import CallTrend, PartialThrottle


def _call(samples: list[tuple[str, int, int, float]]) -> CallTrend:
    trend = CallTrend(rolling_window_ms=30_000)
    for i, (leg, start, end, compound) in enumerate(samples):
        trend.observe(leg, f"s{i}", start, end, compound, final=True)  # type: ignore[arg-type]
    return trend


def test_a_call_that_sours_at_the_end_has_a_negative_trend() -> None:
    trend = _call(
        [
            ("customer", 0, 10_000, 0.4),
            ("customer", 30_000, 40_000, 0.2),
            ("customer", 55_000, 65_000, 0.3),
            ("customer", 85_000, 100_000, -0.6),
        ]
    ).summary("customer")
    assert trend.quarters == pytest.approx((0.4, 0.2, 0.3, -0.6))
    assert trend.trend == pytest.approx(-0.6 - 0.3)  # last quarter against the mean of the earlier ones
    assert trend.rolling == pytest.approx(-0.6)  # only the last 30 s


def test_a_call_that_recovers_has_a_positive_trend() -> None:
    summary = _call([("customer", 0, 20_000, -0.8), ("customer", 80_000, 100_000, 0.6)]).summary("customer")
    assert summary.quarters[1] is None and summary.quarters[2] is None  # nobody spoke there
    assert summary.trend == pytest.approx(1.4)


def test_no_trend_until_the_last_quarter_and_an_earlier_one_have_speech() -> None:
    assert CallTrend().summary().trend is None
    assert _call([("customer", 0, 5_000, -0.5)]).summary().trend is None


def test_samples_are_weighted_by_duration_within_a_quarter() -> None:
    summary = _call(
        [("agent", 0, 9_000, 1.0), ("agent", 9_000, 10_000, -1.0), ("agent", 39_000, 40_000, 0.0)]
    )
    assert summary.summary("agent").quarters[0] == pytest.approx((9 - 1) / 10)


def test_legs_are_separate_and_the_call_scope_holds_both() -> None:
    trend = _call([("agent", 0, 10_000, 0.5), ("customer", 10_000, 20_000, -0.5)])
    assert trend.summary("agent").samples == 1
    assert trend.summary("customer").samples == 1
    assert trend.summary("call").samples == 2


def test_the_latest_score_of_a_turn_wins_and_a_late_partial_does_not_undo_its_final() -> None:
    trend = CallTrend()
    trend.observe("customer", "t1", 0, 1_000, 0.5, final=False)
    trend.observe("customer", "t1", 0, 2_000, -0.5, final=False)
    assert trend.summary("customer").rolling == pytest.approx(-0.5)
    trend.observe("customer", "t1", 0, 2_000, -0.9, final=True)
    trend.observe("customer", "t1", 0, 1_500, 0.9, final=False)
    summary = trend.summary("customer")
    assert summary.samples == 1 and summary.rolling == pytest.approx(-0.9)


def test_a_call_keeps_a_bounded_number_of_samples() -> None:
    trend = CallTrend(max_samples=10)
    for i in range(50):
        trend.observe("agent", f"s{i}", i * 1000, i * 1000 + 500, 0.0, final=True)
    assert trend.summary().samples == 10


def test_partials_are_scored_at_most_once_per_interval_per_turn_and_finals_always() -> None:
    throttle = PartialThrottle(0.5)
    assert throttle.should_score("t1", 10.0, final=False)
    assert not throttle.should_score("t1", 10.2, final=False)
    assert throttle.should_score("t2", 10.2, final=False)  # another turn has its own clock
    assert throttle.should_score("t1", 10.6, final=False)
    assert throttle.should_score("t1", 10.7, final=True)
