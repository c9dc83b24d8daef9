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


# The contact-center lexicon (default engine).


@pytest.fixture(scope="module")
def plain() -> SentimentScorer:
    return VaderScorer(domain=False)


@pytest.mark.parametrize(
    "text",
    [
        "I have been on hold for forty five minutes",
        "This is the third time I've called about this",
        "I called five times last week",
        "Nobody called me back",
        "It's still not working",
        "I was transferred three times",
        "I've been waiting two weeks for my refund",
        "The last agent hung up on me",
    ],
)
def test_complaints_without_sentiment_words_score_negative(
    scorer: SentimentScorer, plain: SentimentScorer, text: str
) -> None:
    assert plain.score(text).compound == pytest.approx(0.0, abs=0.05)  # plain VADER hears nothing
    assert scorer.score(text).compound < -0.3


def test_cancelling_an_appointment_is_routine_but_cancelling_the_account_is_churn(
    scorer: SentimentScorer, plain: SentimentScorer
) -> None:
    routine = "Cancel the appointment on Tuesday"
    assert plain.score(routine).compound < -0.1
    assert scorer.score(routine).compound == pytest.approx(0.0, abs=0.05)
    assert scorer.score("I want to cancel my account").compound < -0.1
    assert scorer.score("I don't want to cancel my account").compound > 0.0  # negation still applies


def test_being_charged_twice_is_more_negative_than_plain_vader_says(
    scorer: SentimentScorer, plain: SentimentScorer
) -> None:
    assert scorer.score("You charged me twice").compound < plain.score("You charged me twice").compound - 0.1


def test_ridiculous_weighs_more_than_in_plain_vader(scorer: SentimentScorer, plain: SentimentScorer) -> None:
    assert scorer.score("that's ridiculous").compound < plain.score("that's ridiculous").compound - 0.1


def test_a_fix_confirmed_scores_positive(scorer: SentimentScorer) -> None:
    assert scorer.score("That's fixed it").compound > 0.3
    assert scorer.score("it's working again").compound > 0.3


def test_request_phrasing_is_neutral(scorer: SentimentScorer) -> None:
    assert scorer.score("I'd like to update my billing address").compound == pytest.approx(0.0, abs=0.05)


# The embedding engine: MiniLM + the head trained on analyze/data/sentiment_train.jsonl.


@pytest.fixture(scope="module")
def embedding_scorer() -> SentimentScorer:
    from analyze.sentiment import EmbeddingScorer, SentimentModelError

    try:
        return EmbeddingScorer.load()
    except SentimentModelError as exc:
        pytest.skip(f"embedding model not installed: {exc}")


@pytest.mark.parametrize(
    "text,sign",
    [
        # Unseen in training: paraphrases of the three classes.
        ("I've been stuck on hold for nearly an hour and no one has picked up", -1),
        ("this keeps breaking and I'm fed up with it", -1),
        ("could you tell me what my current balance is", 0),
        ("I'd like to change my address please", 0),
        ("thanks so much, you've sorted everything out for me", 1),
        ("that's perfect, it works now, thank you", 1),
    ],
)
def test_embedding_engine_classifies_unseen_utterances(
    embedding_scorer: SentimentScorer, text: str, sign: int
) -> None:
    scores = embedding_scorer.score(text)
    assert scores.positive + scores.negative + scores.neutral == pytest.approx(1.0, abs=1e-4)
    if sign < 0:
        assert scores.compound < -0.3
    elif sign > 0:
        assert scores.compound > 0.3
    else:
        assert scores.neutral > max(scores.positive, scores.negative)


def test_shipped_head_matches_its_training_data_labels() -> None:
    from analyze.sentiment import LABELS, LinearHead
    from analyze.train_sentiment import DATA, read_examples

    head = LinearHead.load()
    texts, labels = read_examples(DATA)
    assert head.weights.shape == (384, len(LABELS)) and len(texts) == len(labels) >= 200
    assert set(labels.tolist()) == {0, 1, 2}
