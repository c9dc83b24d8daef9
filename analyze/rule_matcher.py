"""A compiled rule set: which rules and compliance steps a segment's words trigger. Pure.

Conditions are not applied here (they need the call's state; see AssistPolicy): this answers
only "what did these words say". At most one match per rule: an exact phrase first (in the rule's
own order), then the best fuzzy phrase, then the semantic intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analyze.matchers import ExactMatcher, FuzzyMatcher, Hit, SemanticMatcher, TextEmbedder
from analyze.rule_model import ComplianceItem, Rule, RuleSet, TextTrigger, normalize_text
from ingest.events import Leg

_LEGS: tuple[Leg, ...] = ("agent", "customer")
_RANK = {"exact": 0, "fuzzy": 1, "semantic": 2}


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: Rule
    phrase: str  # the rule's own phrase or intent example, not the transcript's words
    how: str = "exact"  # exact | fuzzy | semantic
    score: float = 100.0


@dataclass(frozen=True, slots=True)
class StepHeard:
    item: ComplianceItem
    phrase: str
    how: str


@dataclass(frozen=True, slots=True)
class TextMatches:
    rules: list[RuleMatch]
    compliance: list[StepHeard]
    vector: np.ndarray | None = None  # the utterance's embedding, when semantic matching ran


class _Side:
    """Exact, fuzzy and semantic matchers over one list of triggers (rules, or compliance items)."""

    def __init__(
        self,
        triggers: Sequence[TextTrigger],
        legs: dict[Leg, list[bool]],  # per leg: which triggers apply to it
        fuzzy_cutoff: float,
        intent_threshold: float,
        embedder: TextEmbedder | None,
        background: Sequence[str],
    ) -> None:
        self._order = [{normalize_text(p): i for i, p in enumerate(trigger.phrases)} for trigger in triggers]
        self._legs = legs
        self.exact = ExactMatcher((t, p) for t, trigger in enumerate(triggers) for p in trigger.phrases)
        self.fuzzy = FuzzyMatcher(
            (t, p, trigger.fuzzy_cutoff or fuzzy_cutoff)
            for t, trigger in enumerate(triggers)
            if trigger.fuzzy
            for p in trigger.phrases
        )
        examples = [
            (t, e, trigger.intent_threshold if trigger.intent_threshold is not None else intent_threshold)
            for t, trigger in enumerate(triggers)
            for e in trigger.intents
        ]
        self.semantic = (
            SemanticMatcher(embedder, examples, background) if embedder is not None and examples else None
        )
        self._semantic_rows = (
            {leg: self.semantic.rows_for(t for t, ok in enumerate(mask) if ok) for leg, mask in legs.items()}
            if self.semantic is not None
            else {}
        )

    def best(
        self, normalized: str, text: str, leg: Leg, semantic: bool, vector: np.ndarray | None
    ) -> tuple[dict[int, Hit], np.ndarray | None]:
        allowed = self._legs[leg]
        hits = [h for h in self.exact.match(normalized) + self.fuzzy.match(normalized) if allowed[h.target]]
        if semantic and self.semantic is not None:
            found, vector = self.semantic.match(text, self._semantic_rows[leg], vector=vector)
            hits += found
        best: dict[int, Hit] = {}
        for hit in hits:
            current = best.get(hit.target)
            if current is None or self._key(hit) < self._key(current):
                best[hit.target] = hit
        return best, vector

    def _key(self, hit: Hit) -> tuple[int, float]:
        if hit.how == "exact":
            return (0, self._order[hit.target].get(normalize_text(hit.phrase), 0))
        return (_RANK[hit.how], -hit.score)


class RuleMatcher:
    """Compiled once per rule set (semantic examples are embedded here, so build it off the loop)."""

    def __init__(self, rule_set: RuleSet, *, embedder: TextEmbedder | None = None) -> None:
        self.rule_set = rule_set
        self.semantic = embedder is not None
        rules, items = rule_set.rules, rule_set.compliance
        self._rules = _Side(
            [r.trigger for r in rules],
            {leg: [r.applies_to(leg) for r in rules] for leg in _LEGS},
            rule_set.fuzzy_cutoff,
            rule_set.intent_threshold,
            embedder,
            rule_set.intent_background,
        )
        self._items = _Side(
            [c.trigger for c in items],
            {leg: [c.applies_to(leg) for c in items] for leg in _LEGS},
            rule_set.fuzzy_cutoff,
            rule_set.intent_threshold,
            embedder,
            rule_set.intent_background,
        )
        self.condition_rules: tuple[Rule, ...] = tuple(r for r in rules if r.trigger.empty)

    def match(self, text: str, leg: Leg, *, semantic: bool = True) -> list[RuleMatch]:
        """Rules whose text trigger matches, in rule-file order; conditions not applied."""
        return self.match_all(text, leg, semantic=semantic).rules

    def match_all(self, text: str, leg: Leg, *, semantic: bool = True) -> TextMatches:
        normalized = normalize_text(text)
        if not normalized:
            return TextMatches([], [])
        rule_hits, vector = self._rules.best(normalized, text, leg, semantic, None)
        item_hits, vector = self._items.best(normalized, text, leg, semantic, vector)
        rules, items = self.rule_set.rules, self.rule_set.compliance
        return TextMatches(
            rules=[RuleMatch(rules[t], h.phrase, h.how, h.score) for t, h in sorted(rule_hits.items())],
            compliance=[StepHeard(items[t], h.phrase, h.how) for t, h in sorted(item_hits.items())],
            vector=vector,
        )
