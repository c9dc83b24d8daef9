"""Phrase rules for agent hints and supervisor alerts: model, YAML loader and matcher. Pure.

A rule fires when one of its phrases occurs in a segment's text as whole words, after both are
normalised (case folded, apostrophes dropped, other punctuation turned into spaces). ASR variants
("cancel the account", "close my account") are listed as phrases; nothing fuzzy happens here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from ingest.events import Leg

RuleKind = Literal["hint", "alert"]
RuleLeg = Literal["customer", "agent", "any"]
Severity = Literal["info", "warning", "critical"]

EXAMPLE_RULES_RESOURCE = "rules.example.yaml"
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_APOSTROPHES = re.compile(r"['\u2019`]")
_NON_WORD = re.compile(r"[\W_]+")
_RULE_KEYS = frozenset({"id", "kind", "leg", "phrases", "hint", "message", "severity", "description"})


def normalize_text(text: str) -> str:
    """Case-fold, drop apostrophes ("don't" -> "dont"), turn other punctuation into single spaces."""
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", text.casefold())).split())


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: RuleKind
    leg: RuleLeg
    phrases: tuple[str, ...]  # as written in the rule file; reported back as `matched`
    hint: str = ""  # kind == "hint": text shown to the agent
    message: str = ""  # kind == "alert": text shown to the supervisor
    severity: Severity = "warning"
    description: str = ""

    def applies_to(self, leg: Leg) -> bool:
        return self.leg == "any" or self.leg == leg


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str  # part of every assist event id: bump it when a rule's meaning changes
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: Rule
    phrase: str  # the rule's own phrase, not the transcript's words


class RuleError(ValueError):
    """A rule file that cannot be used; `problems` lists every issue found, one line each."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"invalid rules in {source}:\n" + "\n".join(f"  - {p}" for p in self.problems))


class RuleMatcher:
    """Finds which rules a segment's text triggers; at most one match per rule (its first phrase)."""

    def __init__(self, rule_set: RuleSet) -> None:
        self.rule_set = rule_set
        # Padding with spaces turns "whole words" into a plain substring test on normalised text.
        self._compiled = tuple(
            (rule, tuple((f" {normalize_text(p)} ", p) for p in rule.phrases)) for rule in rule_set.rules
        )

    def match(self, text: str, leg: Leg) -> list[RuleMatch]:
        padded = f" {normalize_text(text)} "
        matches: list[RuleMatch] = []
        for rule, phrases in self._compiled:
            if not rule.applies_to(leg):
                continue
            for needle, phrase in phrases:
                if needle in padded:
                    matches.append(RuleMatch(rule=rule, phrase=phrase))
                    break
        return matches


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load a rule file; without a path, the example rules shipped in this package."""
    if path is None:
        text = resources.files("analyze").joinpath(EXAMPLE_RULES_RESOURCE).read_text(encoding="utf-8")
        return parse_rules_yaml(text, source=f"analyze/{EXAMPLE_RULES_RESOURCE}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(str(path), [f"cannot read file: {exc.strerror or type(exc).__name__}"]) from None
    return parse_rules_yaml(text, source=str(path))


def parse_rules_yaml(text: str, *, source: str = "<rules>") -> RuleSet:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RuleError(source, [f"not valid YAML{where}"]) from None
    return parse_rules(data, source=source)


def parse_rules(data: Any, *, source: str = "<rules>") -> RuleSet:
    """Validate a decoded rule document; collect every problem before raising."""
    if not isinstance(data, Mapping):
        raise RuleError(source, ["top level must be a mapping with 'version' and 'rules'"])
    problems: list[str] = []
    unknown = sorted(set(map(str, data)) - {"version", "rules"})
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(unknown)}")
    version = data.get("version")
    # YAML reads `version: 2024-06-01` as a date and `version: 3` as an int: both are fine as text.
    if isinstance(version, bool) or not isinstance(version, str | int | date) or not str(version).strip():
        problems.append('\'version\' is required (a string such as "2024-06-01" or "3")')
        version = ""
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        problems.append("'rules' must be a non-empty list")
        raw_rules = []

    rules: list[Rule] = []
    seen_ids: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, index, problems)
        if rule is None:
            continue
        if rule.id in seen_ids:
            first = seen_ids[rule.id]
            problems.append(f"rules[{index}]: duplicate id '{rule.id}' (first used by rules[{first}])")
            continue
        seen_ids[rule.id] = index
        rules.append(rule)
    if problems:
        raise RuleError(source, problems)
    return RuleSet(version=str(version).strip(), rules=tuple(rules))


def _parse_rule(raw: Any, index: int, problems: list[str]) -> Rule | None:
    if not isinstance(raw, Mapping):
        problems.append(f"rules[{index}]: must be a mapping")
        return None
    rule_id = raw.get("id")
    where = f"rules[{index}] ({rule_id})" if isinstance(rule_id, str) else f"rules[{index}]"
    before = len(problems)

    unknown = sorted(set(map(str, raw)) - _RULE_KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys: {', '.join(unknown)}")
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        problems.append(f"{where}: 'id' must be lowercase letters, digits, '_', '-' or '.' (at most 64)")
    kind = raw.get("kind")
    if kind not in get_args(RuleKind):
        problems.append(f"{where}: unknown kind {kind!r} (expected one of: hint, alert)")
    leg = raw.get("leg")
    if leg not in get_args(RuleLeg):
        problems.append(f"{where}: unknown leg {leg!r} (expected one of: customer, agent, any)")
    phrases = _parse_phrases(raw.get("phrases"), where, problems)

    hint, message, severity = raw.get("hint", ""), raw.get("message", ""), raw.get("severity", "warning")
    if kind == "hint":
        if not isinstance(hint, str) or not hint.strip():
            problems.append(f"{where}: a hint rule needs non-empty 'hint' text")
        if "message" in raw or "severity" in raw:
            problems.append(f"{where}: 'message' and 'severity' belong to alert rules")
    elif kind == "alert":
        if not isinstance(message, str) or not message.strip():
            problems.append(f"{where}: an alert rule needs non-empty 'message' text")
        if severity not in get_args(Severity):
            problems.append(
                f"{where}: unknown severity {severity!r} (expected one of: info, warning, critical)"
            )
        if "hint" in raw:
            problems.append(f"{where}: 'hint' belongs to hint rules")
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}: 'description' must be text")

    if len(problems) > before:
        return None
    return Rule(
        id=rule_id,
        kind=kind,
        leg=leg,
        phrases=phrases,
        hint=hint.strip() if kind == "hint" else "",
        message=message.strip() if kind == "alert" else "",
        severity=severity if kind == "alert" else "warning",
        description=description.strip(),
    )


def _parse_phrases(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: 'phrases' must be a non-empty list")
        return ()
    phrases: list[str] = []
    seen: set[str] = set()
    for i, phrase in enumerate(raw):
        if not isinstance(phrase, str) or not normalize_text(phrase):
            problems.append(f"{where}: phrases[{i}] is empty or not text")
            continue
        normalized = normalize_text(phrase)
        if normalized in seen:
            problems.append(f"{where}: phrases[{i}] repeats '{phrase}'")
            continue
        seen.add(normalized)
        phrases.append(phrase.strip())
    return tuple(phrases)
