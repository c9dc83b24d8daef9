"""What `callscope demo` shows while the call plays: finals as labelled lines, hints and alerts once."""

from __future__ import annotations

from analyze.events import AgentHint, Sentiment, SupervisorAlert
from deploy.demo_display import LiveView, clock
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
)

CALL = "demo-1"
TIMES = StageTimes(audio_captured_at=10.0, audio_received_at=10.1, emitted_at=11.0, speech_ended_at=10.2)


def _partial(text: str, revision: int, leg: str = "customer", seg: str = "seg-1") -> PartialSegment:
    return PartialSegment(
        call_id=CALL,
        leg=leg,
        segment_id=seg,
        start_ms=12_500,
        end_ms=13_000,
        text=text,
        times=TIMES,
        revision=revision,
    )


def _final(text: str, leg: str = "customer", seg: str = "seg-1") -> FinalSegment:
    return FinalSegment(
        call_id=CALL, leg=leg, segment_id=seg, start_ms=12_500, end_ms=15_000, text=text, times=TIMES
    )


def _alert(on_final: bool) -> SupervisorAlert:
    return SupervisorAlert(
        event_id="evt-1",
        call_id=CALL,
        leg="customer",
        segment_id="seg-1",
        on_final=on_final,
        rule_id="escalation-request",
        rule_version="1",
        matched="speak to a manager",
        segment_emitted_at=11.0,
        emitted_at=11.1,
        message="Customer is asking for a manager.",
    )


def test_partials_show_on_the_status_line_until_the_final_replaces_them() -> None:
    view = LiveView(CALL)
    assert view.on_transcript(_partial("I want to", 0)) == []
    view.on_transcript(_partial("I want to speak", 1))
    assert view.status() == "… CUSTOMER: I want to speak"
    lines = view.on_transcript(_final("I want to speak to a manager."))
    assert [line.text for line in lines] == ["[00:12.5] CUSTOMER I want to speak to a manager.  (+0.8 s)"]
    assert view.status() == ""
    assert view.on_transcript(_partial("I want to speak", 2)) == []  # late partial of a finished turn
    assert view.status() == ""


def test_older_partial_revisions_do_not_replace_newer_ones() -> None:
    view = LiveView(CALL)
    view.on_transcript(_partial("I want to speak", 3))
    view.on_transcript(_partial("I want", 2))
    assert view.status() == "… CUSTOMER: I want to speak"


def test_alert_is_highlighted_once_and_says_it_fired_before_the_turn_ended() -> None:
    view = LiveView(CALL)
    first = view.on_assist(_alert(on_final=False))
    assert len(first) == 1 and first[0].style == "alert" and "before the turn ended" in first[0].text
    assert view.on_assist(_alert(on_final=False)) == []  # redelivered: same event id


def test_hints_are_highlighted_and_sentiment_is_not_printed_live() -> None:
    view = LiveView(CALL)
    hint = AgentHint(
        event_id="evt-2",
        call_id=CALL,
        leg="customer",
        segment_id="seg-1",
        on_final=True,
        rule_id="retention-cancel",
        rule_version="1",
        matched="cancel my account",
        segment_emitted_at=11.0,
        emitted_at=11.1,
        hint="Offer the loyalty discount.",
    )
    [line] = view.on_assist(hint)
    assert line.style == "hint" and "Offer the loyalty discount." in line.text
    sentiment = Sentiment(
        call_id=CALL,
        leg="customer",
        segment_id="seg-1",
        final=True,
        compound=-0.4,
        positive=0.0,
        negative=0.4,
        neutral=0.6,
        segment_emitted_at=11.0,
        emitted_at=11.1,
    )
    assert view.on_assist(sentiment) == []


def test_other_calls_are_ignored_and_the_call_lifecycle_is_shown() -> None:
    view = LiveView(CALL)
    assert view.on_transcript(_final("hello").model_copy(update={"call_id": "other"})) == []
    [started] = view.on_transcript(
        TranscriptCallStarted(call_id=CALL, started_at=1.0, agent_id="a-7", queue="billing")
    )
    assert "a-7" in started.text and "billing" in started.text
    [ended] = view.on_transcript(TranscriptCallEnded(call_id=CALL, ended_at=2.0))
    assert view.ended and "ended" in ended.text


def test_clock_formats_position_within_the_call() -> None:
    assert clock(0) == "00:00.0"
    assert clock(83_450) == "01:23.5"
