"""Sentiment scoring of segment text (VADER behind the SentimentScorer seam)."""

from __future__ import annotations

import pytest

from analyze.sentiment import SentimentScorer, VaderScorer


@pytest.fixture(scope="module")
def scorer() -> SentimentScorer:
    return VaderScorer()


@pytest.mark.parametrize(
    "text",
    [
        "Thank you so much, that was really helpful, I appreciate it.",
        "Great, that's perfect, you've been wonderful.",
    ],
)
def test_clearly_positive_text_scores_positive(scorer: SentimentScorer, text: str) -> None:
    scores = scorer.score(text)
    assert scores.compound > 0.5
    assert scores.positive > scores.negative


@pytest.mark.parametrize(
    "text",
    [
        "This is terrible, I'm furious and your service is awful.",
        "I hate this, it's the worst experience and I'm very angry.",
    ],
)
def test_clearly_negative_text_scores_negative(scorer: SentimentScorer, text: str) -> None:
    scores = scorer.score(text)
    assert scores.compound < -0.5
    assert scores.negative > scores.positive


def test_neutral_text_scores_near_zero_and_proportions_sum_to_one(scorer: SentimentScorer) -> None:
    scores = scorer.score("my account number is four five six")
    assert abs(scores.compound) < 0.2
    assert scores.positive + scores.negative + scores.neutral == pytest.approx(1.0, abs=0.01)
