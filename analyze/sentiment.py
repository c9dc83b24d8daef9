"""Sentiment scoring of one segment's text. Pure: text in, scores out.

Three engines behind one seam:
- `VaderScorer` (default, ~30 µs): VADER plus a contact-center lexicon (`analyze/lexicon.py`)
  for the complaints that carry no sentiment word ("on hold for forty five minutes").
- `EmbeddingScorer` (optional): MiniLM sentence vectors (analyze.embeddings) and a logistic
  regression head trained only on the project's own labelled utterances
  (`analyze/data/sentiment_train.jsonl`, `python -m analyze.train_sentiment`).
- `TransformersScorer` (optional, `models` extra): an operator's own sequence-classification
  model loaded from a local directory; nothing is fetched from a hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from analyze.lexicon import CONTACT_CENTER_WORDS, PhraseLexicon

SentimentEngine = Literal["vader", "embedding", "transformers"]
LABELS = ("negative", "neutral", "positive")
HEAD_RESOURCE = "data/sentiment_head.npz"


@dataclass(frozen=True, slots=True)
class SentimentScores:
    compound: float  # -1 (most negative) .. +1 (most positive)
    positive: float
    negative: float
    neutral: float


class SentimentScorer(Protocol):
    """Seam for sentiment engines."""

    def score(self, text: str) -> SentimentScores: ...


class SentimentModelError(RuntimeError):
    """An engine's model cannot be loaded (missing files or packages); not retryable."""

    retryable = False


class VaderScorer:
    """VADER with the contact-center lexicon; `domain=False` gives plain VADER."""

    def __init__(self, *, domain: bool = True) -> None:
        self._analyzer = SentimentIntensityAnalyzer()
        self._phrases: PhraseLexicon | None = None
        if domain:
            self._phrases = PhraseLexicon()
            self._analyzer.lexicon.update(CONTACT_CENTER_WORDS)
            self._analyzer.lexicon.update(self._phrases.token_valences())

    def score(self, text: str) -> SentimentScores:
        if self._phrases is not None:
            text = self._phrases.rewrite(text)
        polarity = self._analyzer.polarity_scores(text)
        return SentimentScores(
            compound=max(-1.0, min(1.0, float(polarity["compound"]))),
            positive=float(polarity["pos"]),
            negative=float(polarity["neg"]),
            neutral=float(polarity["neu"]),
        )


def _from_probabilities(p_negative: float, p_neutral: float, p_positive: float) -> SentimentScores:
    return SentimentScores(
        compound=max(-1.0, min(1.0, p_positive - p_negative)),
        positive=p_positive,
        negative=p_negative,
        neutral=p_neutral,
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class LinearHead:
    """Multinomial logistic regression over sentence vectors: probabilities = softmax(xW + b)."""

    weights: np.ndarray  # (dimensions, 3) in LABELS order
    bias: np.ndarray  # (3,)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        return softmax(vectors @ self.weights + self.bias)

    def save(self, path: Path) -> None:
        np.savez(path, weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32))

    @classmethod
    def load(cls, path: Path | None = None) -> LinearHead:
        source = path or resources.files("analyze").joinpath(HEAD_RESOURCE)
        with source.open("rb") as f, np.load(f) as data:
            return cls(weights=data["weights"], bias=data["bias"])


class Embedder(Protocol):
    def embed(self, texts: Any) -> np.ndarray: ...


class EmbeddingScorer:
    """Sentence vector -> trained head; ~5-10 ms per utterance on one thread, so run it off the loop."""

    def __init__(self, embedder: Embedder, head: LinearHead) -> None:
        self._embedder = embedder
        self._head = head

    @classmethod
    def load(cls, head_path: Path | None = None) -> EmbeddingScorer:
        from analyze.embeddings import Embedder as MiniLM
        from analyze.embeddings import EmbeddingModelMissing

        try:
            return cls(MiniLM.load(), LinearHead.load(head_path))
        except EmbeddingModelMissing as exc:
            raise SentimentModelError(str(exc)) from None

    def score(self, text: str) -> SentimentScores:
        if not text.strip():
            return SentimentScores(0.0, 0.0, 0.0, 1.0)
        p = self._head.probabilities(self._embedder.embed([text]))[0]
        return _from_probabilities(float(p[0]), float(p[1]), float(p[2]))


class TransformersScorer:
    """An operator's sequence-classification model from a local directory (2 or 3 labels)."""

    def __init__(self, model_dir: str | Path, *, max_length: int = 128, threads: int = 1) -> None:
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError:
            raise SentimentModelError("pip install 'callscope[models]' torch (transformers engine)") from None
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise SentimentModelError(f"no model at {path}: expected a save_pretrained() directory")
        torch.set_num_threads(threads)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        self._model.eval()
        self._max_length = max_length
        self._index = label_indices(self._model.config.id2label)

    def score(self, text: str) -> SentimentScores:
        if not text.strip():
            return SentimentScores(0.0, 0.0, 0.0, 1.0)
        inputs = self._tokenizer(text, return_tensors="pt", truncation=True, max_length=self._max_length)
        with self._torch.inference_mode():
            logits = self._model(**inputs).logits[0].float().numpy()
        p = softmax(logits)
        neg, neu, pos = (0.0 if i is None else float(p[i]) for i in self._index)
        return _from_probabilities(neg, neu, pos)


def label_indices(id2label: dict[int, str]) -> tuple[int | None, int | None, int | None]:
    """Positions of the negative, neutral and positive outputs, from the model's own label names.

    Generic names (LABEL_0..) follow the common convention: two labels = (negative, positive),
    three = (negative, neutral, positive).
    """
    names = {int(i): str(label).casefold() for i, label in id2label.items()}
    found: dict[str, int] = {}
    for i, name in names.items():
        for key, words in (("neg", ("neg", "bad")), ("neu", ("neu",)), ("pos", ("pos", "good"))):
            if any(w in name for w in words):
                found.setdefault(key, i)
    if "neg" in found and "pos" in found:
        return found["neg"], found.get("neu"), found["pos"]
    if len(names) == 2:
        return 0, None, 1
    if len(names) == 3:
        return 0, 1, 2
    raise SentimentModelError(f"cannot tell which of {len(names)} labels is negative and positive")


def make_scorer(engine: SentimentEngine = "vader", *, model_dir: Path | None = None) -> SentimentScorer:
    """The configured engine; raises SentimentModelError when its model is missing."""
    match engine:
        case "vader":
            return VaderScorer()
        case "embedding":
            return EmbeddingScorer.load()
        case "transformers":
            if model_dir is None:
                raise SentimentModelError("the transformers engine needs a model directory")
            return TransformersScorer(model_dir)
