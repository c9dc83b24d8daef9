"""The values a rule set is made of: rules, their conditions, compliance items. Pure, no I/O.

A rule fires when its text trigger matches a segment (exact phrases, fuzzy phrases, semantic
intent examples) and its conditions hold; a rule without a text trigger fires once per call when
its (sentiment or trend) conditions first hold.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ingest.events import Leg

RuleKind = Literal["hint", "alert", "tag"]  # tag: recorded for conditions and compliance, never sent
RuleLeg = Literal["customer", "agent", "any"]
Severity = Literal["info", "warning", "critical"]
KnowledgeMode = str  # "" (none), "auto" (retrieved by the utterance) or an article id

# Tuned on tests/data/fuzzy_phrases.yaml (ASR-garbled phrases and near-miss call sentences);
# bench/rules.py --tune prints the precision/recall sweep behind it.
DEFAULT_FUZZY_CUTOFF = 85.0
# Cosine similarity of all-MiniLM-L6-v2 to the nearest example; below it the utterance is
# off-topic. Tuned on tests/data/intents.yaml.
DEFAULT_INTENT_THRESHOLD = 0.45

_APOSTROPHES = re.compile(r"['\u2019`]")
_NON_WORD = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """Case-fold, drop apostrophes ("don't" -> "dont"), turn other punctuation into single spaces."""
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", text.casefold())).split())


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a condition may look at, for one segment of one call."""

    call_time_ms: int  # where the segment starts in the call (its leg's audio position)
    segment_sentiment: float | None = None  # compound score of this segment's text
    call_sentiment: float | None = None  # mean compound of the customer's finals so far
    call_trend: float | None = None  # last quarter against the earlier ones (analyze.trends)
    fired: Collection[str] = ()  # ids of rules that fired earlier in the call


@dataclass(frozen=True, slots=True)
class Conditions:
    """All given bounds must hold; an unknown figure (no sentiment yet) fails its bound."""

    min_call_time_ms: int | None = None
    max_call_time_ms: int | None = None
    segment_sentiment_below: float | None = None
    segment_sentiment_above: float | None = None
    call_sentiment_below: float | None = None
    call_sentiment_above: float | None = None
    call_trend_below: float | None = None
    after_rules: tuple[str, ...] = ()  # at least one of them fired earlier in the call
    unless_rules: tuple[str, ...] = ()  # none of them fired earlier in the call

    @property
    def is_trigger(self) -> bool:
        """Whether these conditions alone can trigger a rule (they do not just restrict it)."""
        return any(
            v is not None
            for v in (
                self.segment_sentiment_below,
                self.segment_sentiment_above,
                self.call_sentiment_below,
                self.call_sentiment_above,
                self.call_trend_below,
            )
        )

    def allows(self, ctx: RuleContext) -> bool:
        if self.min_call_time_ms is not None and ctx.call_time_ms < self.min_call_time_ms:
            return False
        if self.max_call_time_ms is not None and ctx.call_time_ms > self.max_call_time_ms:
            return False
        bounds = (
            (ctx.segment_sentiment, self.segment_sentiment_below, True),
            (ctx.segment_sentiment, self.segment_sentiment_above, False),
            (ctx.call_sentiment, self.call_sentiment_below, True),
            (ctx.call_sentiment, self.call_sentiment_above, False),
            (ctx.call_trend, self.call_trend_below, True),
        )
        for value, bound, below in bounds:
            if bound is None:
                continue
            if value is None or (value >= bound if below else value <= bound):
                return False
        if self.after_rules and not any(r in ctx.fired for r in self.after_rules):
            return False
        return not any(r in ctx.fired for r in self.unless_rules)


@dataclass(frozen=True, slots=True)
class TextTrigger:
    """How a rule or compliance item is recognised in a segment's words."""

    phrases: tuple[str, ...] = ()  # as written in the rule file; reported back as `matched`
    fuzzy: bool = False  # phrases also match ASR-garbled variants
    fuzzy_cutoff: float | None = None  # None: the rule set's
    intents: tuple[str, ...] = ()  # example utterances for semantic matching
    intent_threshold: float | None = None  # None: the rule set's

    @property
    def empty(self) -> bool:
        return not self.phrases and not self.intents


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: RuleKind
    leg: RuleLeg
    phrases: tuple[str, ...] = ()
    hint: str = ""  # kind == "hint": text shown to the agent
    message: str = ""  # kind == "alert": text shown to the supervisor
    severity: Severity = "warning"
    description: str = ""
    fuzzy: bool = False
    fuzzy_cutoff: float | None = None
    intents: tuple[str, ...] = ()
    intent_threshold: float | None = None
    when: Conditions = field(default_factory=Conditions)
    category: str = ""  # free label for dashboards: escalation, competitor, sentiment, ...
    knowledge: KnowledgeMode = ""

    def applies_to(self, leg: Leg) -> bool:
        return self.leg == "any" or self.leg == leg

    @property
    def trigger(self) -> TextTrigger:
        return TextTrigger(self.phrases, self.fuzzy, self.fuzzy_cutoff, self.intents, self.intent_threshold)


@dataclass(frozen=True, slots=True)
class ComplianceItem:
    """A step the agent must take: said within the first `within_ms`, and/or before `before_rules`."""

    id: str
    leg: RuleLeg
    trigger: TextTrigger
    message: str  # the alert text when the step is missed
    severity: Severity = "warning"
    within_ms: int | None = None
    before_rules: tuple[str, ...] = ()
    description: str = ""

    def applies_to(self, leg: Leg) -> bool:
        return self.leg == "any" or self.leg == leg


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str  # part of every assist event id: bump it when a rule's meaning changes
    rules: tuple[Rule, ...]
    compliance: tuple[ComplianceItem, ...] = ()
    fuzzy_cutoff: float = DEFAULT_FUZZY_CUTOFF
    intent_threshold: float = DEFAULT_INTENT_THRESHOLD
    intent_background: tuple[str, ...] = ()  # ordinary call talk no intent should claim

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


class RuleError(ValueError):
    """A rule file that cannot be used; `problems` lists every issue found, one line each."""

    retryable = False

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"invalid rules in {source}:\n" + "\n".join(f"  - {p}" for p in self.problems))
