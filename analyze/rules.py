"""Versioned YAML rule sets: loader and validation. Pure apart from reading the file.

The schema is documented in `rules.example.yaml`, the rule set shipped with the package. A bad
file raises RuleError listing every problem, so an operator fixes them in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import yaml

from analyze.rule_matcher import RuleMatch, RuleMatcher, TextMatches
from analyze.rule_model import (
    DEFAULT_FUZZY_CUTOFF,
    DEFAULT_INTENT_THRESHOLD,
    ComplianceItem,
    Conditions,
    Rule,
    RuleContext,
    RuleError,
    RuleKind,
    RuleLeg,
    RuleSet,
    Severity,
    TextTrigger,
    normalize_text,
)
from analyze.rule_schema import Problems, parse_conditions, parse_trigger, rule_id_problem, texts_of

__all__ = [
    "ComplianceItem",
    "Conditions",
    "Rule",
    "RuleContext",
    "RuleError",
    "RuleKind",
    "RuleLeg",
    "RuleMatch",
    "RuleMatcher",
    "RuleSet",
    "Severity",
    "TextMatches",
    "TextTrigger",
    "load_rules",
    "normalize_text",
    "parse_rules",
    "parse_rules_yaml",
]

EXAMPLE_RULES_RESOURCE = "rules.example.yaml"
_TOP_KEYS = frozenset(
    {"version", "rules", "compliance", "fuzzy_cutoff", "intent_threshold", "intent_background"}
)
_TRIGGER_KEYS = frozenset({"phrases", "fuzzy", "fuzzy_cutoff", "intents", "intent_threshold"})
_RULE_KEYS = _TRIGGER_KEYS | {
    "id", "kind", "leg", "hint", "message", "severity", "description", "when", "category", "knowledge",
}  # fmt: skip
_COMPLIANCE_KEYS = _TRIGGER_KEYS | {
    "id", "leg", "message", "severity", "description", "within_s", "before_rules",
}  # fmt: skip


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load a rule file; without a path, the example rules shipped in this package."""
    if path is None:
        text = resources.files("analyze").joinpath(EXAMPLE_RULES_RESOURCE).read_text(encoding="utf-8")
        return parse_rules_yaml(text, source=f"analyze/{EXAMPLE_RULES_RESOURCE}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise RuleError(str(path), [f"cannot read file: {reason}"]) from None
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
    problems: Problems = []
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(unknown)}")
    version = data.get("version")
    # YAML reads `version: 2024-06-01` as a date and `version: 3` as an int: both are fine as text.
    if isinstance(version, bool) or not isinstance(version, str | int | date) or not str(version).strip():
        problems.append('\'version\' is required (a string such as "2024-06-01" or "3")')
        version = ""
    fuzzy_cutoff = _number(data, "fuzzy_cutoff", DEFAULT_FUZZY_CUTOFF, 50, 100, "", problems)
    intent_threshold = _number(data, "intent_threshold", DEFAULT_INTENT_THRESHOLD, 0, 1, "", problems)
    background = (
        texts_of(data["intent_background"], "intent_background", "top level", problems)
        if "intent_background" in data
        else ()
    )
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        problems.append("'rules' must be a non-empty list")
        raw_rules = []
    raw_items = data.get("compliance", [])
    if not isinstance(raw_items, list):
        problems.append("'compliance' must be a list")
        raw_items = []

    seen_ids: dict[str, str] = {}
    rules = _unique(
        [_parse_rule(raw, i, problems) for i, raw in enumerate(raw_rules)], "rules", seen_ids, problems
    )
    items = _unique(
        [_parse_compliance(raw, i, problems) for i, raw in enumerate(raw_items)],
        "compliance",
        seen_ids,
        problems,
    )
    rule_ids = {r.id for r in rules}
    for owner, refs in [(f"rules ({r.id})", (*r.when.after_rules, *r.when.unless_rules)) for r in rules] + [
        (f"compliance ({c.id})", c.before_rules) for c in items
    ]:
        for ref in refs:
            if ref not in rule_ids:
                problems.append(f"{owner}: refers to unknown rule '{ref}'")
    if problems:
        raise RuleError(source, problems)
    return RuleSet(
        version=str(version).strip(),
        rules=tuple(rules),
        compliance=tuple(items),
        fuzzy_cutoff=fuzzy_cutoff,
        intent_threshold=intent_threshold,
        intent_background=background,
    )


def _unique(parsed: list, section: str, seen: dict[str, str], problems: Problems) -> list:
    kept = []
    for index, entry in enumerate(parsed):
        if entry is None:
            continue
        if entry.id in seen:
            problems.append(f"{section}[{index}]: duplicate id '{entry.id}' (first used by {seen[entry.id]})")
            continue
        seen[entry.id] = f"{section}[{index}]"
        kept.append(entry)
    return kept


def _number(raw: Mapping, key: str, default: float, low: float, high: float, where: str, problems: Problems):
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        problems.append(f"{where}'{key}' must be a number from {low:g} to {high:g}")
        return default
    return float(value)


def _header(raw: Any, section: str, index: int, keys: frozenset[str], problems: Problems) -> str | None:
    """Common checks of a rule or compliance entry; returns where to point at in messages."""
    if not isinstance(raw, Mapping):
        problems.append(f"{section}[{index}]: must be a mapping")
        return None
    rule_id = raw.get("id")
    where = f"{section}[{index}] ({rule_id})" if isinstance(rule_id, str) else f"{section}[{index}]"
    unknown = sorted(set(map(str, raw)) - keys)
    if unknown:
        problems.append(f"{where}: unknown keys: {', '.join(unknown)}")
    if (problem := rule_id_problem(rule_id)) is not None:
        problems.append(f"{where}: {problem}")
    if raw.get("leg") not in get_args(RuleLeg):
        problems.append(f"{where}: unknown leg {raw.get('leg')!r} (expected one of: customer, agent, any)")
    return where


def _parse_rule(raw: Any, index: int, problems: Problems) -> Rule | None:
    before = len(problems)
    where = _header(raw, "rules", index, _RULE_KEYS, problems)
    if where is None:
        return None
    kind = raw.get("kind")
    if kind not in get_args(RuleKind):
        problems.append(f"{where}: unknown kind {kind!r} (expected one of: hint, alert, tag)")
    when = parse_conditions(raw.get("when", {}), where, problems)
    trigger = parse_trigger(raw, where, problems, required=when is None or not when.is_trigger)
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
    elif kind == "tag" and {"hint", "message", "severity", "knowledge"} & set(raw):
        problems.append(f"{where}: a tag rule sends nothing: no 'hint', 'message', 'severity' or 'knowledge'")
    texts = {k: raw.get(k, "") for k in ("description", "category", "knowledge")}
    for key, value in texts.items():
        if not isinstance(value, str):
            problems.append(f"{where}: '{key}' must be text")
    if len(problems) > before or trigger is None or when is None:
        return None
    return Rule(
        id=raw["id"],
        kind=kind,
        leg=raw["leg"],
        phrases=trigger.phrases,
        hint=hint.strip() if kind == "hint" else "",
        message=message.strip() if kind == "alert" else "",
        severity=severity if kind == "alert" else "warning",
        description=texts["description"].strip(),
        fuzzy=trigger.fuzzy,
        fuzzy_cutoff=trigger.fuzzy_cutoff,
        intents=trigger.intents,
        intent_threshold=trigger.intent_threshold,
        when=when,
        category=texts["category"].strip(),
        knowledge=texts["knowledge"].strip(),
    )


def _parse_compliance(raw: Any, index: int, problems: Problems) -> ComplianceItem | None:
    before = len(problems)
    where = _header(raw, "compliance", index, _COMPLIANCE_KEYS, problems)
    if where is None:
        return None
    trigger = parse_trigger(raw, where, problems, required=True)
    message, severity = raw.get("message"), raw.get("severity", "warning")
    if not isinstance(message, str) or not message.strip():
        problems.append(f"{where}: a compliance item needs non-empty 'message' text for its miss alert")
    if severity not in get_args(Severity):
        problems.append(f"{where}: unknown severity {severity!r} (expected one of: info, warning, critical)")
    within_s = raw.get("within_s")
    if within_s is not None and (isinstance(within_s, bool) or not isinstance(within_s, int | float)):
        problems.append(f"{where}: 'within_s' must be a number of seconds")
        within_s = None
    before_rules = raw.get("before_rules", [])
    if not isinstance(before_rules, list) or not all(isinstance(r, str) for r in before_rules):
        problems.append(f"{where}: 'before_rules' must be a list of rule ids")
        before_rules = []
    if within_s is None and not before_rules:
        problems.append(f"{where}: give 'within_s' and/or 'before_rules' (when the step is due)")
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}: 'description' must be text")
    if len(problems) > before or trigger is None:
        return None
    return ComplianceItem(
        id=raw["id"],
        leg=raw["leg"],
        trigger=trigger,
        message=message.strip(),
        severity=severity,
        within_ms=None if within_s is None else int(within_s * 1000),
        before_rules=tuple(before_rules),
        description=description.strip(),
    )
