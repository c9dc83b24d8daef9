"""Sentiment scoring of one segment's text. Pure: text in, scores out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@dataclass(frozen=True, slots=True)
class SentimentScores:
    compound: float  # -1 (most negative) .. +1 (most positive)
    positive: float
    negative: float
    neutral: float


class SentimentScorer(Protocol):
    """Seam for sentiment engines: VADER here, a fine-tuned classifier later."""

    def score(self, text: str) -> SentimentScores: ...


class VaderScorer:
    """VADER lexicon scorer (~15 µs per utterance, so it runs inline on the event loop)."""

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str) -> SentimentScores:
        polarity = self._analyzer.polarity_scores(text)
        return SentimentScores(
            compound=max(-1.0, min(1.0, float(polarity["compound"]))),
            positive=float(polarity["pos"]),
            negative=float(polarity["neg"]),
            neutral=float(polarity["neu"]),
        )
