"""An assist policy on a ticking clock (one second per call), for tests that read its events."""

from __future__ import annotations

import itertools

from analyze.assist import AssistPolicy
from analyze.rules import RuleMatcher, RuleSet
from analyze.sentiment import SentimentScorer


def ticking_policy(rules: RuleSet, scorer: SentimentScorer) -> AssistPolicy:
    clock = itertools.count(1000.0, 1.0)
    return AssistPolicy(RuleMatcher(rules), scorer, clock=lambda: next(clock))
