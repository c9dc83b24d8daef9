"""A call's assist state survives a snapshot and restore: the policy carries on as if never stopped."""

from __future__ import annotations

import dataclasses
import json
import zlib

import pytest

from analyze.assist import AssistPolicy
from analyze.call_state import StateFormatError, decode_state, encode_state, worth_saving
from analyze.events import AgentHint, ComplianceState, Sentiment, SupervisorAlert
from analyze.live import LiveSettings
from analyze.rules import RuleMatcher, RuleSet, load_rules
from analyze.sentiment import VaderScorer
from ingest.events import Leg
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
    segment_id,
)

CALL = "c-state"
RULES = load_rules()


def _policy(rules: RuleSet = RULES) -> AssistPolicy:
    # A fixed clock: every emitted_at is the same, so two runs compare event for event.
    return AssistPolicy(
        RuleMatcher(rules), VaderScorer(), clock=lambda: 1_000.0, live=LiveSettings(metrics_interval_ms=5_000)
    )


def _turn(leg: Leg, start_ms: int, text: str, *, at: float) -> list[TranscriptEvent]:
    """Partials that grow word by word (0.3 s apart, so the throttle matters), then the final."""
    sid = segment_id(CALL, leg, start_ms)
    words = text.split()
    out: list[TranscriptEvent] = []
    for i in range(len(words)):
        times = StageTimes(audio_captured_at=at, audio_received_at=at, emitted_at=at + 0.3 * i)
        out.append(
            PartialSegment(
                call_id=CALL,
                leg=leg,
                segment_id=sid,
                start_ms=start_ms,
                end_ms=start_ms + 400 * (i + 1),
                text=" ".join(words[: i + 1]),
                revision=i,
                times=times,
            )  # fmt: skip
        )
    times = StageTimes(audio_captured_at=at, audio_received_at=at, emitted_at=at + 0.3 * len(words))
    out.append(
        FinalSegment(
            call_id=CALL,
            leg=leg,
            segment_id=sid,
            start_ms=start_ms,
            end_ms=start_ms + 400 * len(words),
            text=text + ".",
            times=times,
        )  # fmt: skip
    )
    return out


def _call() -> list[TranscriptEvent]:
    return [
        TranscriptCallStarted(call_id=CALL, started_at=100.0),
        *_turn("agent", 0, "thank you for calling this call may be recorded", at=100.0),
        *_turn("customer", 4_000, "this is terrible I want to cancel my account", at=104.0),
        *_turn("agent", 9_000, "I am sorry to hear that let me help", at=109.0),
        *_turn("customer", 13_000, "can I speak to a manager right now", at=113.0),
        *_turn("agent", 40_000, "okay one moment please", at=140.0),
        TranscriptCallEnded(call_id=CALL, ended_at=150.0),
    ]


def _run(policy: AssistPolicy, events: list[TranscriptEvent]) -> list[bytes]:
    return [out.to_bytes() for event in events for out in policy.on_event(event)]


def test_a_call_restored_at_any_point_emits_the_same_events_as_an_uninterrupted_policy() -> None:
    events = _call()
    uninterrupted = _policy()
    expected_tail = [_run(uninterrupted, [e]) for e in events]
    assert any(b"retention-cancel" in out for step in expected_tail for out in step)  # the script fires
    for cut in range(1, len(events) - 1):
        before = _policy()
        _run(before, events[:cut])
        snapshot = before.snapshot(CALL)
        assert snapshot is not None
        after = _policy()
        after.restore(CALL, decode_state(encode_state(snapshot)))
        got = [_run(after, [e]) for e in events[cut:]]
        assert got == expected_tail[cut:], f"diverged after a restore at event {cut}"


def test_a_rule_fired_before_the_restore_is_not_sent_again_and_the_checklist_carries_on() -> None:
    events = _call()
    half = len(events) // 2
    first = _policy()
    emitted = [e for ev in events[:half] for e in first.on_event(ev)]
    assert [e.rule_id for e in emitted if isinstance(e, AgentHint)] == ["retention-cancel"]
    second = _policy()
    second.restore(CALL, decode_state(encode_state(first.snapshot(CALL) or {})))
    # The same turn delivered again (offsets not yet committed when the worker died): nothing new.
    assert second.on_event(events[half - 1]) == []
    rest = [e for ev in events[half:] for e in second.on_event(ev)]
    assert not [e for e in rest if isinstance(e, AgentHint) and e.rule_id == "retention-cancel"]
    (closing,) = [e for e in rest if isinstance(e, ComplianceState) and e.call_ended]
    steps = {s.item_id: s.status for s in closing.steps}
    assert steps["recording-disclosure"] == "met"  # heard in the first half, before the restore
    assert not [e for e in rest if isinstance(e, SupervisorAlert) and e.rule_id == "recording-disclosure"]


def test_the_saved_state_holds_no_transcript_text() -> None:
    policy = _policy()
    _run(policy, _call()[:-1])
    raw = zlib.decompress(encode_state(policy.snapshot(CALL) or {})).decode()
    for words in ("my account", "speak to", "may be recorded", "terrible", "one moment"):
        assert words not in raw  # rule ids are there, what was said is not
    assert json.loads(raw)["v"] == 1


def test_a_state_of_an_unknown_format_is_refused() -> None:
    with pytest.raises(StateFormatError):
        decode_state(zlib.compress(b'{"v": 99}'))
    with pytest.raises(StateFormatError):
        decode_state(b"not zlib")
    with pytest.raises(StateFormatError):
        _policy().restore(CALL, {"v": 1, "segments": "oops"})


def test_after_a_rule_reload_the_restored_checklist_keeps_steps_both_versions_have() -> None:
    events = _call()
    first = _policy()
    _run(first, events[:12])
    reloaded = dataclasses.replace(RULES, version="next")
    second = _policy(reloaded)
    second.restore(CALL, first.snapshot(CALL) or {})
    closing = [e for ev in events[12:] for e in second.on_event(ev) if isinstance(e, ComplianceState)]
    assert closing[-1].rule_version == "next"
    assert {s.item_id: s.status for s in closing[-1].steps}["recording-disclosure"] == "met"


def test_finals_call_starts_and_partials_that_fire_are_worth_a_changelog_record() -> None:
    events = _call()
    policy = _policy()
    saved = {type(e).__name__: 0 for e in events}
    for event in events:
        if worth_saving(event, policy.on_event(event)):
            saved[type(event).__name__] += 1
    assert saved["TranscriptCallStarted"] == 1 and saved["FinalSegment"] == 5
    assert 1 <= saved["PartialSegment"] <= 4  # the disclosure, the hint, the alert: not every partial
    assert saved["TranscriptCallEnded"] == 0  # the end deletes the state instead
    assert not worth_saving(events[1], [Sentiment.model_construct()])
