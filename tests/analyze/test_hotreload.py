"""Hot reload of the rule file: a new version is used at once; a bad file leaves the running rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analyze import metrics
from analyze.assist import AssistPolicy
from analyze.events import AgentHint
from analyze.hotreload import RuleReloader
from analyze.rules import RuleMatcher, load_rules
from analyze.sentiment import SentimentScores
from tests.analyze.policies import ticking_policy
from transcribe.events import FinalSegment, StageTimes, segment_id

V1 = """
version: "v1"
rules:
  - {id: retention, kind: hint, leg: customer, phrases: [cancel my account], hint: Offer a discount.}
"""
V2 = """
version: "v2"
rules:
  - {id: retention, kind: hint, leg: customer, phrases: [cancel my account], hint: Offer two months free.}
  - {id: refund, kind: hint, leg: customer, phrases: [refund], hint: Refund policy.}
"""


class NeutralScorer:
    def score(self, text: str) -> SentimentScores:
        return SentimentScores(compound=0.0, positive=0.0, negative=0.0, neutral=1.0)


def _write(path: Path, text: str, *, mtime_ns: int) -> None:
    path.write_text(text)
    # Explicit modification times: two writes within the file system's clock tick still differ.
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    _write(path, V1, mtime_ns=1_000_000_000)
    return path


@pytest.fixture
def policy(rules_file: Path) -> AssistPolicy:
    return ticking_policy(load_rules(rules_file), NeutralScorer())


@pytest.fixture
def reloader(rules_file: Path, policy: AssistPolicy) -> RuleReloader:
    return RuleReloader(rules_file, policy.rules, compile=RuleMatcher, install=policy.use_rules)


def _hints(policy: AssistPolicy, text: str, start_ms: int) -> list[AgentHint]:
    segment = FinalSegment(
        call_id="c1",
        leg="customer",
        segment_id=segment_id("c1", "customer", start_ms),
        start_ms=start_ms,
        end_ms=start_ms + 1000,
        text=text,
        times=StageTimes(audio_captured_at=1.0, audio_received_at=1.0, emitted_at=2.0),
    )
    return [e for e in policy.on_event(segment) if isinstance(e, AgentHint)]


def _rejections() -> float:
    return metrics.RULE_RELOADS.labels(outcome="rejected")._value.get()


def test_a_new_version_is_used_by_the_next_event_without_a_restart(
    rules_file: Path, policy: AssistPolicy, reloader: RuleReloader
) -> None:
    (before,) = _hints(policy, "cancel my account", 0)
    assert (before.rule_version, before.hint) == ("v1", "Offer a discount.")

    _write(rules_file, V2, mtime_ns=2_000_000_000)
    result = reloader.check()

    assert (result.outcome, result.version) == ("reloaded", "v2")
    after = _hints(policy, "cancel my account, and a refund", 5_000)
    assert [(h.rule_id, h.rule_version) for h in after] == [("retention", "v2"), ("refund", "v2")]
    assert after[0].hint == "Offer two months free."


def test_an_unchanged_file_is_not_read_again(reloader: RuleReloader) -> None:
    assert reloader.check().outcome == "unchanged"


def test_a_touched_file_with_the_same_content_changes_nothing(
    rules_file: Path, reloader: RuleReloader
) -> None:
    os.utime(rules_file, ns=(5_000_000_000, 5_000_000_000))
    assert reloader.check().outcome == "unchanged"


def test_a_broken_file_keeps_the_running_rules_and_is_counted(
    rules_file: Path, policy: AssistPolicy, reloader: RuleReloader
) -> None:
    rejected_before = _rejections()
    _write(rules_file, "version: 'v3'\nrules: [{id: x, kind: popup", mtime_ns=2_000_000_000)

    result = reloader.check()

    assert result.outcome == "rejected" and result.version == "v1"
    assert result.problems and "not valid YAML" in result.problems[0]
    assert _rejections() == rejected_before + 1
    (hint,) = _hints(policy, "cancel my account", 0)
    assert hint.rule_version == "v1"
    # Fixing the file is picked up by the next check.
    _write(rules_file, V2, mtime_ns=3_000_000_000)
    assert reloader.check().outcome == "reloaded"


def test_invalid_rules_are_rejected_with_their_problems(rules_file: Path, reloader: RuleReloader) -> None:
    _write(
        rules_file,
        V2.replace(
            "kind: hint, leg: customer, phrases: [refund]", "kind: hint, leg: caller, phrases: [refund]"
        ),
        mtime_ns=2_000_000_000,
    )
    result = reloader.check()
    assert result.outcome == "rejected"
    assert result.problems == (
        "rules[1] (refund): unknown leg 'caller' (expected one of: customer, agent, any)",
    )


def test_changed_rules_under_the_same_version_are_refused(rules_file: Path, reloader: RuleReloader) -> None:
    _write(rules_file, V1.replace("Offer a discount.", "Offer nothing."), mtime_ns=2_000_000_000)
    result = reloader.check()
    assert result.outcome == "rejected" and "bump it" in result.problems[0]


def test_comment_only_changes_are_accepted_silently(rules_file: Path, reloader: RuleReloader) -> None:
    _write(rules_file, "# reviewed by QA\n" + V1, mtime_ns=2_000_000_000)
    assert reloader.check().outcome == "unchanged"


def test_a_deleted_file_keeps_the_running_rules(rules_file: Path, reloader: RuleReloader) -> None:
    rules_file.unlink()
    result = reloader.check()
    assert result.outcome == "rejected" and result.version == "v1"


def test_a_compile_failure_keeps_the_running_rules(rules_file: Path, policy: AssistPolicy) -> None:
    def broken_compile(rule_set):
        raise RuntimeError("model missing")

    reloader = RuleReloader(rules_file, policy.rules, compile=broken_compile, install=policy.use_rules)
    _write(rules_file, V2, mtime_ns=2_000_000_000)
    result = reloader.check()
    assert result.outcome == "rejected" and result.problems == ("cannot compile: RuntimeError",)
    assert policy.rules.rule_set.version == "v1"
