"""Text matchers behind the rules: exact phrases, fuzzy phrases, semantic intents. Pure.

Each matcher is built once per rule set from (target, phrase) pairs, where a target is an index
the caller maps back to its rule or compliance item, and answers with (target, phrase, score)
hits. All text is compared after `normalize_text`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import ahocorasick
import numpy as np
from rapidfuzz import fuzz, process

from analyze.rule_model import normalize_text

# Short phrases are exact only: one garbled letter in "sue you" is another phrase ("see you").
MIN_FUZZY_CHARS = 8


@dataclass(frozen=True, slots=True)
class Hit:
    target: int
    phrase: str  # the rule's own phrase or intent example, not the transcript's words
    score: float  # 100 for exact hits, the rapidfuzz ratio for fuzzy ones, cosine for intents
    how: str  # "exact" | "fuzzy" | "semantic"


class ExactMatcher:
    """Whole-word phrase occurrences with one Aho-Corasick pass (~1 µs per utterance)."""

    def __init__(self, phrases: Iterable[tuple[int, str]]) -> None:
        self._automaton = ahocorasick.Automaton()
        needles: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for target, phrase in phrases:
            # Padding with spaces turns "whole words" into a plain substring test.
            needles[f" {normalize_text(phrase)} "].append((target, phrase))
        for needle, owners in needles.items():
            self._automaton.add_word(needle, tuple(owners))
        self._empty = not needles
        if not self._empty:
            self._automaton.make_automaton()

    def match(self, normalized: str) -> list[Hit]:
        if self._empty:
            return []
        hits: list[Hit] = []
        for _end, owners in self._automaton.iter(f" {normalized} "):
            hits.extend(Hit(target, phrase, 100.0, "exact") for target, phrase in owners)
        return hits


class FuzzyMatcher:
    """Phrases that survive ASR errors: rapidfuzz ratio over word windows, best phrase per span.

    A phrase of k words is compared with every window of k-1..k+1 words (ASR splits and merges
    words: "can sell my count" for "cancel my account"). Overlapping candidate spans are
    resolved best score first, so one stretch of speech yields one phrase.
    """

    def __init__(self, phrases: Iterable[tuple[int, str, float]]) -> None:
        groups: dict[int, list[tuple[str, int, str, float]]] = defaultdict(list)
        for target, phrase, cutoff in phrases:
            normalized = normalize_text(phrase)
            if len(normalized) >= MIN_FUZZY_CHARS:
                groups[len(normalized.split())].append((normalized, target, phrase, cutoff))
        self._groups = {
            k: (
                [g[0] for g in group],
                [(g[1], g[2]) for g in group],
                np.array([g[3] for g in group], dtype=np.float32),
            )
            for k, group in groups.items()
        }
        self._lowest = {k: float(cutoffs.min()) for k, (_, _, cutoffs) in self._groups.items()}

    def match(self, normalized: str) -> list[Hit]:
        words = normalized.split()
        if not words or not self._groups:
            return []
        candidates: list[tuple[float, int, int, int, str]] = []  # score, start, end, target, phrase
        for k, (texts, owners, cutoffs) in self._groups.items():
            spans = [
                (start, start + size)
                for size in range(max(1, k - 1), k + 2)
                for start in range(0, len(words) - size + 1)
            ]
            if not spans:
                continue
            windows = [" ".join(words[a:b]) for a, b in spans]
            scores = process.cdist(
                windows, texts, scorer=fuzz.ratio, score_cutoff=self._lowest[k], dtype=np.float32
            )
            rows, cols = np.nonzero(scores >= cutoffs[None, :])
            for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
                (start, end), (target, phrase) = spans[row], owners[col]
                candidates.append((float(scores[row, col]), start, end, target, phrase))
        # Best first; on a tie the longer span, so "cancel my account" beats "my account".
        candidates.sort(key=lambda c: (-c[0], -(c[2] - c[1]), c[1]))
        taken: list[tuple[int, int]] = []
        hits: list[Hit] = []
        best_score_of_span: dict[tuple[int, int], float] = {}
        for score, start, end, target, phrase in candidates:
            span = (start, end)
            if span in best_score_of_span:
                # Same words, same best score: every target owning an equally good phrase fires.
                if score == best_score_of_span[span]:
                    hits.append(Hit(target, phrase, score, "fuzzy"))
                continue
            if any(start < b and a < end for a, b in taken):
                continue
            taken.append(span)
            best_score_of_span[span] = score
            hits.append(Hit(target, phrase, score, "fuzzy"))
        return hits


class TextEmbedder(Protocol):
    """Seam for sentence embeddings (analyze.embeddings.Embedder): unit-length rows."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SemanticMatcher:
    """Nearest intent by cosine similarity to its example utterances, with a rejection threshold.

    Only the best intent among those allowed fires, and only when its nearest example is at least
    as similar as its threshold and closer than every background example (ordinary call talk, the
    "none of these" class): an off-topic utterance fires nothing. MiniLM ranks by topic, so
    "I paid my bill on time" sits near a billing-dispute example; the background catches that.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        examples: Sequence[tuple[int, str, float]],
        background: Sequence[str] = (),
    ) -> None:
        self._embedder = embedder
        self._background = (
            embedder.embed([normalize_text(b) for b in background])
            if background
            else np.zeros((0, 1), dtype=np.float32)
        )
        self._targets = np.array([t for t, _, _ in examples], dtype=np.int64)
        self._examples = [e for _, e, _ in examples]
        self._thresholds = np.array([th for _, _, th in examples], dtype=np.float32)
        vectors = embedder.embed([normalize_text(e) for e in self._examples]) if examples else None
        self._vectors = vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)

    @property
    def empty(self) -> bool:
        return len(self._examples) == 0

    def match(
        self, text: str, allowed: np.ndarray | None = None, *, vector: np.ndarray | None = None
    ) -> tuple[list[Hit], np.ndarray | None]:
        """The best allowed intent (at most one hit) and the utterance's vector, for reuse."""
        normalized = normalize_text(text)
        if self.empty or not normalized:
            return [], vector
        if vector is None:
            vector = self._embedder.embed([normalized])[0]
        similarity = self._vectors @ vector
        passing = similarity >= self._thresholds
        if len(self._background):
            passing &= similarity > float(np.max(self._background @ vector))
        if allowed is not None:
            passing &= allowed
        if not passing.any():
            return [], vector
        best = int(np.argmax(np.where(passing, similarity, -np.inf)))
        hit = Hit(int(self._targets[best]), self._examples[best], float(similarity[best]), "semantic")
        return [hit], vector

    def rows_for(self, targets: Iterable[int]) -> np.ndarray:
        """A mask of the example rows owned by the given targets (e.g. those of one leg)."""
        return np.isin(self._targets, np.fromiter(targets, dtype=np.int64))
