"""Rule files and phrase matching: what fires, on which leg, and what a bad file says."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from analyze.rules import RuleError, RuleMatcher, RuleSet, load_rules, normalize_text, parse_rules_yaml

RULES = textwrap.dedent(
    """
    version: "7"
    rules:
      - id: retention-cancel
        kind: hint
        leg: customer
        phrases: [cancel my account, close my account]
        hint: Offer the loyalty discount.
      - id: escalation-request
        kind: alert
        leg: customer
        phrases: [speak to a manager, "talk to your supervisor"]
        severity: warning
        message: Customer asks for a manager.
      - id: wrap-up
        kind: hint
        leg: agent
        phrases: [is there anything else]
        hint: Summarise and close.
      - id: legal
        kind: alert
        leg: any
        phrases: [lawyer, "can't help"]
        severity: critical
        message: Legal words.
    """
)


@pytest.fixture(scope="module")
def matcher() -> RuleMatcher:
    return RuleMatcher(parse_rules_yaml(RULES))


def _ids(matcher: RuleMatcher, text: str, leg: str) -> list[str]:
    return [m.rule.id for m in matcher.match(text, leg)]  # type: ignore[arg-type]


def test_phrase_matches_ignoring_case_and_punctuation(matcher: RuleMatcher) -> None:
    (match,) = matcher.match("Yeah, I want to CANCEL... my account! Today.", "customer")
    assert match.rule.id == "retention-cancel"
    assert match.phrase == "cancel my account"  # the rule's words, not the transcript's


def test_phrase_must_match_whole_words(matcher: RuleMatcher) -> None:
    # "cancel my accountant" is a different request; prefixes of words never fire.
    assert _ids(matcher, "I need to cancel my accountant's appointment", "customer") == []
    assert _ids(matcher, "my lawyers said so", "customer") == []
    assert _ids(matcher, "lawyer", "customer") == ["legal"]


def test_apostrophes_are_optional_so_asr_spellings_match(matcher: RuleMatcher) -> None:
    assert _ids(matcher, "you cant help me", "customer") == ["legal"]
    assert _ids(matcher, "you can\u2019t help me", "customer") == ["legal"]


def test_rule_only_fires_on_its_leg(matcher: RuleMatcher) -> None:
    assert _ids(matcher, "can I speak to a manager", "customer") == ["escalation-request"]
    assert _ids(matcher, "can I speak to a manager", "agent") == []
    assert _ids(matcher, "is there anything else", "agent") == ["wrap-up"]
    assert _ids(matcher, "is there anything else", "customer") == []
    assert _ids(matcher, "my lawyer", "agent") == ["legal"]


def test_one_match_per_rule_and_several_rules_at_once(matcher: RuleMatcher) -> None:
    text = "close my account or I cancel my account and I'll talk to your supervisor"
    matches = matcher.match(text, "customer")
    assert [(m.rule.id, m.phrase) for m in matches] == [
        ("retention-cancel", "cancel my account"),
        ("escalation-request", "talk to your supervisor"),
    ]


def test_normalize_text_folds_case_and_punctuation() -> None:
    assert normalize_text("  Don't   CANCEL-my_account?! ") == "dont cancel my account"


def test_example_rules_shipped_with_the_package_load_and_fire() -> None:
    rules = load_rules()
    matcher = RuleMatcher(rules)
    assert rules.version
    assert _ids(matcher, "I want to cancel my subscription", "customer") == ["retention-cancel"]
    assert _ids(matcher, "let me speak to a supervisor", "customer") == ["escalation-request"]
    assert _ids(matcher, "I want a refund", "customer") == ["refund-request"]
    assert _ids(matcher, "Is there anything else I can help you with?", "agent") == ["agent-wrap-up"]


def test_rules_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    rules = load_rules(path)
    assert isinstance(rules, RuleSet) and rules.version == "7" and len(rules.rules) == 4


def test_a_missing_file_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read file"):
        load_rules(tmp_path / "absent.yaml")


def test_numeric_and_date_versions_are_read_as_text() -> None:
    base = "rules: [{id: a, kind: hint, leg: any, phrases: [x], hint: h}]\n"
    assert parse_rules_yaml("version: 3\n" + base).version == "3"
    assert parse_rules_yaml("version: 2024-06-01\n" + base).version == "2024-06-01"


def _problems(text: str) -> tuple[str, ...]:
    with pytest.raises(RuleError) as caught:
        parse_rules_yaml(textwrap.dedent(text), source="rules.yaml")
    assert "rules.yaml" in str(caught.value)
    return caught.value.problems


def test_duplicate_rule_ids_are_rejected() -> None:
    problems = _problems(
        """
        version: "1"
        rules:
          - {id: dup, kind: hint, leg: any, phrases: [a], hint: h}
          - {id: dup, kind: hint, leg: any, phrases: [b], hint: h}
        """
    )
    assert problems == ("rules[1]: duplicate id 'dup' (first used by rules[0])",)


def test_empty_phrases_are_rejected() -> None:
    problems = _problems(
        """
        version: "1"
        rules:
          - {id: none, kind: hint, leg: any, phrases: [], hint: h}
          - {id: blank, kind: hint, leg: any, phrases: ["  ", "?!"], hint: h}
        """
    )
    assert problems == (
        "rules[0] (none): 'phrases' must be a non-empty list",
        "rules[1] (blank): phrases[0] is empty or not text",
        "rules[1] (blank): phrases[1] is empty or not text",
    )


def test_unknown_kind_leg_and_severity_are_rejected_with_the_allowed_values() -> None:
    problems = _problems(
        """
        version: "1"
        rules:
          - {id: k, kind: popup, leg: any, phrases: [a]}
          - {id: l, kind: hint, leg: caller, phrases: [a], hint: h}
          - {id: s, kind: alert, leg: any, phrases: [a], message: m, severity: high}
        """
    )
    assert problems == (
        "rules[0] (k): unknown kind 'popup' (expected one of: hint, alert, tag)",
        "rules[1] (l): unknown leg 'caller' (expected one of: customer, agent, any)",
        "rules[2] (s): unknown severity 'high' (expected one of: info, warning, critical)",
    )


def test_rule_text_must_fit_its_kind() -> None:
    problems = _problems(
        """
        version: "1"
        rules:
          - {id: h, kind: hint, leg: any, phrases: [a], message: m}
          - {id: a, kind: alert, leg: any, phrases: [a], hint: h}
        """
    )
    assert problems == (
        "rules[0] (h): a hint rule needs non-empty 'hint' text",
        "rules[0] (h): 'message' and 'severity' belong to alert rules",
        "rules[1] (a): an alert rule needs non-empty 'message' text",
        "rules[1] (a): 'hint' belongs to hint rules",
    )


def test_missing_version_typos_and_bad_yaml_are_reported() -> None:
    assert _problems("rules: [{id: a, kind: hint, leg: any, phrase: [x], hint: h}]") == (
        '\'version\' is required (a string such as "2024-06-01" or "3")',
        "rules[0] (a): unknown keys: phrase",
        "rules[0] (a): 'phrases' must be a non-empty list",
    )
    assert _problems("version: '1'\nrules: []") == ("'rules' must be a non-empty list",)
    assert _problems("version: [1\n") == ("not valid YAML at line 2",)


def test_fuzzy_intents_conditions_and_compliance_are_read_from_the_file() -> None:
    rules = parse_rules_yaml(
        textwrap.dedent(
            """
            version: "9"
            fuzzy_cutoff: 90
            intent_threshold: 0.5
            intent_background: [I paid my bill]
            rules:
              - id: cancel
                kind: hint
                leg: customer
                phrases: [cancel my account]
                fuzzy: true
                fuzzy_cutoff: 80
                intents: [I want to leave you]
                intent_threshold: 0.6
                when: {min_call_time_s: 5, after_rules: [details]}
                category: retention
                knowledge: auto
                hint: Retain.
              - {id: details, kind: tag, leg: agent, phrases: [your balance is]}
            compliance:
              - id: disclosure
                leg: agent
                phrases: [this call may be recorded]
                within_s: 30
                before_rules: [details]
                severity: critical
                message: No disclosure.
            """
        )
    )
    cancel, details = rules.rules
    assert (rules.fuzzy_cutoff, rules.intent_threshold, rules.intent_background) == (
        90.0,
        0.5,
        ("I paid my bill",),
    )
    assert (cancel.fuzzy, cancel.fuzzy_cutoff, cancel.intents, cancel.intent_threshold) == (
        True,
        80.0,
        ("I want to leave you",),
        0.6,
    )
    assert (cancel.when.min_call_time_ms, cancel.when.after_rules) == (5000, ("details",))
    assert (cancel.category, cancel.knowledge, details.kind) == ("retention", "auto", "tag")
    (item,) = rules.compliance
    assert (item.id, item.within_ms, item.before_rules, item.severity) == (
        "disclosure",
        30_000,
        ("details",),
        "critical",
    )


def test_intents_alone_are_a_text_trigger() -> None:
    rules = parse_rules_yaml("version: 1\nrules: [{id: a, kind: tag, leg: any, intents: [hello there]}]")
    assert rules.rules[0].phrases == () and rules.rules[0].intents == ("hello there",)


def test_bad_compliance_items_and_dangling_references_are_reported() -> None:
    problems = _problems(
        """
        version: "1"
        rules:
          - {id: a, kind: tag, leg: agent, phrases: [x]}
          - {id: b, kind: tag, leg: agent, phrases: [x], hint: h}
        compliance:
          - {id: a, leg: agent, phrases: [y], within_s: 30, message: m}
          - {id: c, leg: agent, phrases: [z], message: m}
          - {id: d, leg: agent, phrases: [w], before_rules: [nope], message: m}
        """
    )
    assert problems == (
        "rules[1] (b): a tag rule sends nothing: no 'hint', 'message', 'severity' or 'knowledge'",
        "compliance[1] (c): give 'within_s' and/or 'before_rules' (when the step is due)",
        "compliance[0]: duplicate id 'a' (first used by rules[0])",
        "compliance (d): refers to unknown rule 'nope'",
    )


def test_example_rules_carry_compliance_steps_and_categories() -> None:
    rules = load_rules()
    assert {c.id for c in rules.compliance} == {"recording-disclosure", "identity-verification"}
    categories = {r.category for r in rules.rules}
    assert {"escalation", "competitor", "sentiment"} <= categories
    trend = rules.rule("negative-sentiment-trend")
    assert trend is not None and trend.when.call_trend_below is not None and trend.trigger.empty
