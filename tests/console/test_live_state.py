"""Folding transcript and assist events into the live state: pure, no loop, no broker."""

from __future__ import annotations

from console.live_state import MAX_LINES_PER_CALL, LiveState
from tests.console.scripted import ScriptedCall


def fold_all(state: LiveState, *events: object, now: float = 0.0) -> list:
    items = []
    for event in events:
        if event.type.startswith(("call.", "segment.", "leg.")):  # type: ignore[attr-defined]
            items += state.fold_transcript(event, now=now)  # type: ignore[arg-type]
        else:
            items += state.fold_assist(event, now=now)  # type: ignore[arg-type]
    return items


def test_a_partial_is_replaced_in_place_by_its_final():
    call = ScriptedCall("c1")
    state = LiveState()
    fold_all(
        state,
        call.started(),
        call.partial("customer", 0, "i want to"),
        call.partial("customer", 0, "i want to cancel", 1),
    )
    (line,) = state.calls["c1"].lines.values()
    assert (line.text, line.final) == ("i want to cancel", False)
    fold_all(state, call.final("customer", 0, "I want to cancel my account."))
    (line,) = state.calls["c1"].lines.values()
    assert (line.text, line.final) == ("I want to cancel my account.", True)


def test_a_late_partial_or_an_older_revision_never_replaces_newer_text():
    call = ScriptedCall("c1")
    state = LiveState()
    fold_all(
        state, call.started(), call.partial("agent", 0, "hello there", 2), call.partial("agent", 0, "hel", 1)
    )
    assert state.calls["c1"].lines[call.final("agent", 0, "").segment_id].text == "hello there"
    fold_all(state, call.final("agent", 0, "Hello there."), call.partial("agent", 0, "hello", 3))
    line = next(iter(state.calls["c1"].lines.values()))
    assert (line.text, line.final) == ("Hello there.", True)


def test_the_wall_row_carries_sentiment_trend_alerts_worst_severity_and_compliance():
    call = ScriptedCall("c1", agent_id="ava", queue="billing")
    state = LiveState()
    fold_all(
        state,
        call.started(),
        call.final("customer", 0, "This is ridiculous."),
        call.sentiment("customer", 0, -0.6),
        call.sentiment("agent", 2000, 0.4),
        call.trend("customer", -0.3),
        call.alert(0, "escalation.supervisor", "speak to a manager", "Customer asks for a manager"),
        call.alert(0, "legal.threat", "lawyer", "Legal threat", severity="critical"),
        call.compliance(greeting="met", recording_disclosure="missed"),
    )
    row = state.calls["c1"].row(now=call.t0 + 30)
    assert row["sentiment"] == {"agent": 0.4, "customer": -0.6}
    assert row["trend"]["customer"] == -0.3
    assert (row["alerts"], row["worst_severity"], row["compliance"]) == (2, "critical", "missed")
    assert row["duration_s"] == 30.0


def test_marks_keep_rule_version_matched_phrase_and_whether_they_fired_before_the_turn_ended():
    call = ScriptedCall("c1")
    state = LiveState()
    alert = call.alert(0, "escalation.supervisor", "speak to a manager", "Manager requested", on_final=False)
    fold_all(state, call.started(), call.partial("customer", 0, "let me speak to a manager"), alert, alert)
    (mark,) = state.calls["c1"].marks.values()
    assert (mark.rule_id, mark.rule_version, mark.matched) == (
        "escalation.supervisor",
        "2024-07-01",
        "speak to a manager",
    )
    assert mark.before_turn_end is True
    (shown,) = state.calls["c1"].detail(now=call.t0 + 5)["marks"]
    assert shown["at_ms"] == 0


def test_assist_events_folded_before_their_call_and_segments_are_placed_where_they_belong():
    """The console reads the assist topic apart from the transcript topic: on read-back after a
    restart, a call's hints and sentiment can be folded before its call.started and its finals."""
    call = ScriptedCall("c1")
    state = LiveState()
    early = [
        call.alert(27_500, "legal.threat", "lawyer", "Customer threatens legal action"),
        call.sentiment("customer", 27_500, -0.7),
        call.sentiment("customer", 5_000, -0.3),
    ]
    fold_all(state, *early)
    fold_all(state, call.started(), call.final("customer", 5_000, "charged twice"))
    fold_all(state, call.final("customer", 27_500, "I'll talk to my lawyer"))
    detail = state.calls["c1"].detail(now=call.t0 + 40)
    assert [m["at_ms"] for m in detail["marks"]] == [27_500]
    assert detail["sentiment_series"]["customer"] == [(5_000, -0.3), (27_500, -0.7)]


def test_hints_and_customer_sentiment_go_to_the_agent_with_deterministic_ids_and_supervisor_alerts_do_not():
    call = ScriptedCall("c1", agent_id="ava")
    state = LiveState(agent_alert_categories=("compliance",))
    items = fold_all(
        state,
        call.started(),
        call.hint(0, "retention.offer", "cancel", "Offer the loyalty discount"),
        call.alert(0, "escalation.supervisor", "manager", "Manager requested"),
        call.alert(
            0, "compliance.disclosure", "", "Recording disclosure missed", category="compliance", leg="agent"
        ),
        call.sentiment("customer", 0, -0.5),
        call.sentiment("agent", 0, 0.5),
    )
    kinds = [(i.kind, i.agent_id) for i in items]
    assert kinds == [("call.started", "ava"), ("hint", "ava"), ("alert", "ava"), ("sentiment", "ava")]
    again = fold_all(
        LiveState(), call.started(), call.hint(0, "retention.offer", "cancel", "Offer the loyalty discount")
    )
    assert [i.item_id for i in again] == [i.item_id for i in items[:2]]


def test_an_ended_call_leaves_the_wall_at_once_and_memory_after_its_linger():
    call = ScriptedCall("c1")
    state = LiveState(ended_call_linger_s=120)
    fold_all(state, call.started(), now=0)
    assert [c.call_id for c in state.active_calls()] == ["c1"]
    version = state.version
    fold_all(state, call.ended(), now=10)
    assert state.active_calls() == []
    assert state.removed_since(version) == ["c1"]
    assert state.expire(now=100) == []
    assert state.expire(now=131) == ["c1"]
    assert "c1" not in state.calls


def test_a_call_silent_past_the_stale_limit_is_dropped():
    state = LiveState(stale_call_s=600)
    fold_all(state, ScriptedCall("lost").started(), now=0)
    assert state.expire(now=599) == []
    assert state.expire(now=600) == ["lost"]


def test_state_is_bounded_in_calls_and_lines():
    state = LiveState(max_calls=3)
    for i in range(5):
        fold_all(state, ScriptedCall(f"c{i}").started())
    assert list(state.calls) == ["c2", "c3", "c4"]
    call = ScriptedCall("long")
    for i in range(MAX_LINES_PER_CALL + 10):
        fold_all(state, call.final("agent", i * 2000, f"turn {i}"))
    assert len(state.calls["long"].lines) == MAX_LINES_PER_CALL


def test_per_stage_latency_comes_from_the_stamps_the_events_carry():
    call = ScriptedCall("c1")
    state = LiveState()
    fold_all(
        state,
        call.started(),
        call.partial("customer", 0, "i want"),
        call.partial("customer", 0, "i want to", 1),
        call.final("customer", 0, "I want to cancel."),
        call.hint(0, "retention.offer", "cancel", "Offer"),
    )
    latency = state.calls["c1"].latency_summary()
    assert latency["audio_to_partial"]["count"] == 1  # the first partial of a turn only
    assert latency["audio_to_partial"]["p50_s"] == 0.15
    assert latency["speech_end_to_final"]["p50_s"] == 0.3
    assert latency["final_to_hint"]["count"] == 1


def test_detail_since_a_version_holds_only_what_changed():
    call = ScriptedCall("c1")
    state = LiveState()
    fold_all(state, call.started(), call.final("agent", 0, "Hello."))
    version = state.version
    fold_all(state, call.partial("customer", 2000, "hi"))
    detail = state.calls["c1"].detail(now=call.t0, since=version)
    assert [line["text"] for line in detail["lines"]] == ["hi"]
    assert detail["lines"][0]["final"] is False


def test_a_hint_read_before_its_call_started_reaches_the_agent_once_the_start_arrives():
    call = ScriptedCall("c1", agent_id="ava")
    state = LiveState()
    early = fold_all(
        state, call.hint(0, "retention.offer", "cancel", "Offer"), call.sentiment("customer", 0, -0.2)
    )
    assert early == []
    items = fold_all(state, call.started())
    assert [(i.kind, i.agent_id) for i in items] == [
        ("call.started", "ava"),
        ("hint", "ava"),
        ("sentiment", "ava"),
    ]


def test_changed_since_names_each_changed_call_once_and_gives_up_past_the_change_log():
    state = LiveState()
    a, b = ScriptedCall("a"), ScriptedCall("b")
    fold_all(state, a.started(), b.started())
    version = state.version
    fold_all(state, a.final("agent", 0, "one"), b.final("agent", 0, "two"), a.final("agent", 2000, "three"))
    assert [c.call_id for c in state.changed_since(version)] == ["b", "a"]
    assert state.changed_since(state.version) == []
    state.touched = type(state.touched)(state.touched, maxlen=2)  # a short log, for the test
    fold_all(state, a.final("agent", 4000, "four"), b.final("agent", 4000, "five"))
    assert state.changed_since(version) is None
