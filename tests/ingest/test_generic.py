"""The generic WebSocket protocol for PBXs and SBCs: its documented sequence, bad input, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.events import CallEnded, CallStarted, Codec
from ingest.generic import GenericSession, audio_message
from ingest.protocol import CLOSE_NORMAL, Emit, Finish, ProtocolError, Reply


def start(**overrides) -> str:
    body = {
        "type": "start",
        "call_id": "pbx-call-1",
        "codec": "pcm16",
        "sample_rate_hz": 16000,
        "agent_id": "agent-7",
        "queue": "billing",
        "direction": "outbound",
        "metadata": {"trunk": "sbc-2", "attempt": 2},
    }
    return json.dumps(body | overrides)


def records(actions) -> list:
    return [a.record for a in actions if isinstance(a, Emit)]


def started_session(**overrides) -> GenericSession:
    session = GenericSession()
    session.on_text(start(**overrides), 1.0)
    return session


def test_start_frames_per_leg_and_end_make_a_call():
    session = GenericSession()
    actions = session.on_text(start(), 1.0)
    assert actions[0] == Reply({"type": "started", "call_id": "pbx-call-1"})
    [started] = records(actions)
    assert isinstance(started, CallStarted) and started.source == "generic"
    assert (started.agent_id, started.queue, started.direction) == ("agent-7", "billing", "outbound")
    assert started.metadata == {"trunk": "sbc-2", "attempt": "2"}

    agent = records(session.on_binary(audio_message("agent", b"\x01\x00" * 320), 1.02))
    customer = records(session.on_binary(audio_message("customer", b"\x02\x00" * 320), 1.02))
    more = records(session.on_binary(audio_message("agent", b"\x01\x00" * 320), 1.04))
    assert [(f.leg, f.seq, f.offset_samples) for f in agent + customer + more] == [
        ("agent", 0, 0),
        ("customer", 0, 0),
        ("agent", 1, 320),
    ]
    assert agent[0].codec is Codec.PCM16 and agent[0].sample_rate_hz == 16000

    actions = session.on_text(json.dumps({"type": "end", "reason": "transferred"}), 2.0)
    [ended] = records(actions)
    assert isinstance(ended, CallEnded) and ended.reason == "transferred"
    assert Reply({"type": "ended", "call_id": "pbx-call-1"}) in actions
    assert actions[-1] == Finish(CLOSE_NORMAL, "call ended")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (audio_message("agent", b"\x01\x00\x02"), "bad_payload_size"),  # half a PCM16 sample
        (audio_message("agent", b""), "bad_payload_size"),
        (b"", "bad_payload_size"),
        (b"\x07" + b"\x00" * 320, "unknown_track"),
        (audio_message("agent", b"\x00" * 64_002), "oversized"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(frame, reason):
    with pytest.raises(ProtocolError) as caught:
        started_session().on_binary(frame, 1.0)
    assert caught.value.reason == reason


def test_a_leg_not_declared_in_start_is_refused():
    session = started_session(legs=["customer"])
    with pytest.raises(ProtocolError, match="unknown_track"):
        session.on_binary(audio_message("agent", b"\x00\x00" * 160), 1.0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (start(codec="opus"), "schema_mismatch"),
        (start(sample_rate_hz=44100), "schema_mismatch"),
        (start(call_id=""), "schema_mismatch"),
        (start(metadata={str(i): "x" for i in range(65)}), "bad_metadata"),
        ('{"type": "end"}', "out_of_order"),
        ('{"type": "hello"}', "unknown_message"),
        ("[]", "invalid_json"),
        ("x" * 20_000, "oversized"),
    ],
)
def test_bad_control_messages_are_refused_with_a_reason(text, reason):
    with pytest.raises(ProtocolError) as caught:
        GenericSession().on_text(text, 1.0)
    assert caught.value.reason == reason


def test_audio_before_start_and_a_second_start_are_out_of_order():
    with pytest.raises(ProtocolError, match="out_of_order"):
        GenericSession().on_binary(audio_message("agent", b"\xff" * 160), 1.0)
    with pytest.raises(ProtocolError, match="out_of_order"):
        started_session().on_text(start(), 1.0)


def test_an_error_is_answered_the_call_ended_and_the_socket_closed_with_the_reasons_code():
    session = started_session()
    error = ProtocolError("invalid_json")
    actions = session.on_error(error, 3.0)
    assert actions[0] == Reply({"type": "error", "reason": "invalid_json", "message": ""})
    assert [r.reason for r in records(actions)] == ["protocol_error"]
    assert actions[-1] == Finish(1007, "invalid_json")
    assert session.on_error(error, 3.1) == []


def test_a_socket_lost_mid_call_ends_it_as_disconnected():
    [ended] = records(started_session().on_disconnect("disconnected", 4.0))
    assert ended.reason == "disconnected"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text_is_handled_or_refused_with_a_protocol_error(text):
    try:
        GenericSession().on_text(text, 1.0)
    except ProtocolError as error:
        assert error.reason


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["mulaw", "pcm16"]), st.lists(st.binary(max_size=400), max_size=10))
def test_fuzz_frames_become_numbered_leg_frames_or_a_protocol_error(codec, frames):
    session = started_session(codec=codec, sample_rate_hz=8000)
    seen: dict[str, int] = {}
    for frame in frames:
        try:
            [record] = records(session.on_binary(frame, 1.0))
        except ProtocolError as error:
            assert error.reason in ("bad_payload_size", "unknown_track")
            continue
        assert record.seq == seen.get(record.leg, 0)
        seen[record.leg] = record.seq + 1
        assert record.payload == frame[1:]
