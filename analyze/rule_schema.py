"""Validation of the parts rules and compliance items share: text triggers and conditions. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from analyze.rule_model import Conditions, TextTrigger, normalize_text

Problems = list[str]

_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CONDITION_NUMBERS = {
    # key: (low, high, field of Conditions, scale to the field's unit)
    "min_call_time_s": (0.0, 86_400.0, "min_call_time_ms", 1000),
    "max_call_time_s": (0.0, 86_400.0, "max_call_time_ms", 1000),
    "segment_sentiment_below": (-1.0, 1.0, "segment_sentiment_below", None),
    "segment_sentiment_above": (-1.0, 1.0, "segment_sentiment_above", None),
    "call_sentiment_below": (-1.0, 1.0, "call_sentiment_below", None),
    "call_sentiment_above": (-1.0, 1.0, "call_sentiment_above", None),
    "call_trend_below": (-2.0, 2.0, "call_trend_below", None),
}
_CONDITION_LISTS = ("after_rules", "unless_rules")


def rule_id_problem(rule_id: Any) -> str | None:
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        return "'id' must be lowercase letters, digits, '_', '-' or '.' (at most 64)"
    return None


def texts_of(raw: Any, key: str, where: str, problems: Problems) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: '{key}' must be a non-empty list")
        return ()
    texts: list[str] = []
    seen: set[str] = set()
    for i, text in enumerate(raw):
        if not isinstance(text, str) or not normalize_text(text):
            problems.append(f"{where}: {key}[{i}] is empty or not text")
            continue
        normalized = normalize_text(text)
        if normalized in seen:
            problems.append(f"{where}: {key}[{i}] repeats '{text}'")
            continue
        seen.add(normalized)
        texts.append(text.strip())
    return tuple(texts)


def _optional_number(raw: Mapping, key: str, low: float, high: float, where: str, problems: Problems):
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        problems.append(f"{where}: '{key}' must be a number from {low:g} to {high:g}")
        return None
    return float(value)


def parse_trigger(raw: Mapping, where: str, problems: Problems, *, required: bool) -> TextTrigger | None:
    """Phrases (exact, or fuzzy with `fuzzy: true`) and intent examples; at least one when required."""
    before = len(problems)
    phrases = texts_of(raw["phrases"], "phrases", where, problems) if "phrases" in raw else ()
    intents = texts_of(raw["intents"], "intents", where, problems) if "intents" in raw else ()
    if required and "phrases" not in raw and "intents" not in raw:
        problems.append(f"{where}: 'phrases' must be a non-empty list")
    fuzzy = raw.get("fuzzy", False)
    if not isinstance(fuzzy, bool):
        problems.append(f"{where}: 'fuzzy' must be true or false")
    fuzzy_cutoff = _optional_number(raw, "fuzzy_cutoff", 50, 100, where, problems)
    threshold = _optional_number(raw, "intent_threshold", 0, 1, where, problems)
    if len(problems) > before:
        return None
    return TextTrigger(phrases, fuzzy, fuzzy_cutoff, intents, threshold)


def parse_conditions(raw: Any, where: str, problems: Problems) -> Conditions | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: 'when' must be a mapping")
        return None
    before = len(problems)
    unknown = sorted(set(map(str, raw)) - set(_CONDITION_NUMBERS) - set(_CONDITION_LISTS))
    if unknown:
        problems.append(f"{where}: unknown conditions: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, (low, high, name, scale) in _CONDITION_NUMBERS.items():
        value = _optional_number(raw, key, low, high, where, problems)
        if value is not None:
            values[name] = int(value * scale) if scale else value
    for key in _CONDITION_LISTS:
        refs = raw.get(key, [])
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            problems.append(f"{where}: '{key}' must be a list of rule ids")
            continue
        values[key] = tuple(refs)
    if len(problems) > before:
        return None
    return Conditions(**values)
