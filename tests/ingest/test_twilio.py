"""Twilio Media Streams adapter: message sequences from Twilio's published format, and fuzzing."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.events import AudioFrame, CallEnded, CallStarted, Codec
from ingest.protocol import (
    CLOSE_INVALID_PAYLOAD,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    Emit,
    Finish,
    ProtocolError,
)
from ingest.twilio import TwilioSession

STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA7a3ca6fd8b2b47f69e6f4bc2c1a0c4c1"


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(
    seq: int = 1, custom: dict | None = None, tracks=("inbound", "outbound"), stream: str = STREAM, **fmt
) -> str:
    media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1} | fmt
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": str(seq),
            "start": {
                "accountSid": "AC" + "1" * 32,
                "streamSid": stream,
                "callSid": CALL,
                "tracks": list(tracks),
                "customParameters": custom or {},
                "mediaFormat": media_format,
            },
            "streamSid": stream,
        }
    )


def media(
    seq: int, track: str, timestamp_ms: int, audio: bytes = b"\xff" * 160, stream: str = STREAM, **overrides
) -> str:
    body = {
        "track": track,
        "chunk": str(seq),
        "timestamp": str(timestamp_ms),
        "payload": base64.b64encode(audio).decode(),
    } | overrides
    return json.dumps({"event": "media", "sequenceNumber": str(seq), "media": body, "streamSid": stream})


def stop(seq: int) -> str:
    return json.dumps(
        {"event": "stop", "sequenceNumber": str(seq), "streamSid": STREAM, "stop": {"callSid": CALL}}
    )


def records(actions) -> list:
    return [a.record for a in actions if isinstance(a, Emit)]


def started_session(**kwargs) -> TwilioSession:
    session = TwilioSession()
    session.on_text(connected(), 100.0)
    session.on_text(start(**kwargs), 100.0)
    return session


def test_a_stream_becomes_call_started_frames_per_leg_and_call_ended():
    session = TwilioSession()
    assert session.on_text(connected(), 100.0) == []
    [started] = records(
        session.on_text(start(custom={"agent_id": "a-7", "queue": "billing", "crm": "42"}), 100.0)
    )
    assert isinstance(started, CallStarted)
    assert (started.call_id, started.source, started.agent_id, started.queue) == (
        f"{CALL}-{STREAM}",
        "twilio",
        "a-7",
        "billing",
    )
    assert started.metadata["crm"] == "42" and started.metadata["twilio.stream_sid"] == STREAM
    assert started.metadata["twilio.call_sid"] == CALL

    frames = []
    seq = 2
    for n in range(3):
        for track in ("inbound", "outbound"):
            frames += records(session.on_text(media(seq, track, n * 20), 100.1 + n * 0.02))
            seq += 1
    assert (
        session.on_text(json.dumps({"event": "mark", "sequenceNumber": str(seq), "streamSid": STREAM}), 101)
        == []
    )
    actions = session.on_text(stop(seq + 1), 101.0)
    [ended] = records(actions)
    assert isinstance(ended, CallEnded) and ended.reason == "hangup"
    assert actions[-1] == Finish(CLOSE_NORMAL, "stream stopped")

    assert all(
        isinstance(f, AudioFrame) and f.codec is Codec.MULAW and f.sample_rate_hz == 8000 for f in frames
    )
    customer = [f for f in frames if f.leg == "customer"]
    agent = [f for f in frames if f.leg == "agent"]
    assert [f.seq for f in customer] == [0, 1, 2] and [f.seq for f in agent] == [0, 1, 2]
    assert [f.offset_samples for f in customer] == [0, 160, 320]
    # Captured when its first sample was: 20 ms before the chunk arrived.
    assert customer[0].captured_at == pytest.approx(100.1 - 0.02)


def test_a_chunk_that_arrives_late_keeps_its_place_and_leaves_a_gap():
    session = started_session()
    first = records(session.on_text(media(2, "inbound", 0), 1.0))[0]
    later = records(session.on_text(media(3, "inbound", 100), 1.1))[0]  # 80 ms of audio never came
    assert (first.offset_samples, later.offset_samples) == (0, 800)
    assert later.seq == 1


def test_dtmf_is_acknowledged_and_not_forwarded():
    session = started_session()
    dtmf = {
        "event": "dtmf",
        "sequenceNumber": "2",
        "streamSid": STREAM,
        "dtmf": {"track": "inbound_track", "digit": "7"},
    }
    assert session.on_text(json.dumps(dtmf), 1.0) == []


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (media(2, "inbound", 0), "out_of_order"),  # media before start
        (stop(2), "out_of_order"),
        ("{not json", "invalid_json"),
        ('{"event": "unheard-of"}', "unknown_message"),
        ('{"event": "media", "sequenceNumber": "2"}', "schema_mismatch"),
    ],
)
def test_messages_before_start_are_refused_with_a_reason(message, reason):
    session = TwilioSession()
    with pytest.raises(ProtocolError) as caught:
        session.on_text(message, 1.0)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("message", "reason", "close_code"),
    [
        (media(2, "inbound", 0, payload="not base64!!"), "invalid_base64", CLOSE_INVALID_PAYLOAD),
        (media(2, "inbound", 0, payload=""), "bad_payload_size", CLOSE_INVALID_PAYLOAD),
        (media(2, "outbound_track", 0), "unknown_track", CLOSE_PROTOCOL_ERROR),
        (media(1, "inbound", 0), "out_of_order", CLOSE_PROTOCOL_ERROR),  # sequence number went back
        (start(2), "out_of_order", CLOSE_PROTOCOL_ERROR),  # a second start
        (media(2, "inbound", 0).replace(STREAM, "MZother"), "stream_mismatch", CLOSE_PROTOCOL_ERROR),
        (media(2, "inbound", 0, audio=b"\xff" * 64_001), "oversized", 1009),
    ],
)
def test_bad_messages_after_start_end_the_call_with_a_close_code(message, reason, close_code):
    session = started_session()
    with pytest.raises(ProtocolError) as caught:
        session.on_text(message, 2.0)
    assert (caught.value.reason, caught.value.close_code) == (reason, close_code)
    actions = session.on_error(caught.value, 2.0)
    [ended] = records(actions)
    assert ended.reason == "protocol_error" and actions[-1].code == close_code


def test_outbound_track_is_refused_when_start_declared_inbound_only():
    session = started_session(tracks=("inbound",))
    with pytest.raises(ProtocolError, match="unknown_track"):
        session.on_text(media(2, "outbound", 0), 1.0)


def test_a_format_other_than_mulaw_8k_is_refused():
    session = TwilioSession()
    with pytest.raises(ProtocolError, match="unsupported_format"):
        session.on_text(start(sampleRate=16000), 1.0)


def test_binary_messages_are_not_media_streams():
    with pytest.raises(ProtocolError, match="unexpected_binary"):
        started_session().on_binary(b"\x00" * 160, 1.0)


def test_a_socket_lost_without_stop_ends_the_call_as_disconnected_once():
    session = started_session()
    [ended] = records(session.on_disconnect("disconnected", 5.0))
    assert ended.reason == "disconnected"
    assert session.on_disconnect("disconnected", 6.0) == []
    assert TwilioSession().on_disconnect("disconnected", 1.0) == []  # no call, nothing to end


def test_messages_after_stop_are_out_of_order():
    session = started_session()
    session.on_text(stop(2), 1.0)
    with pytest.raises(ProtocolError, match="out_of_order"):
        session.on_text(media(3, "inbound", 0), 1.0)


# --- Fuzzing: whatever arrives, the parser answers with actions or a ProtocolError, nothing else ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text_is_handled_or_refused_with_a_protocol_error(text):
    session = started_session()
    try:
        session.on_text(text, 1.0)
    except ProtocolError as error:
        assert error.reason and error.close_code >= 1000


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["connected", "start", "media", "stop", "mark", "dtmf", "other"]),
    st.dictionaries(
        st.sampled_from(["sequenceNumber", "streamSid", "media", "start", "track", "payload", "timestamp"]),
        json_values,
        max_size=5,
    ),
)
def test_fuzz_structured_messages_never_escape_as_other_errors(event, fields):
    session = started_session()
    try:
        session.on_text(json.dumps({"event": event, **fields}), 1.0)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["inbound", "outbound"]), st.integers(0, 10_000)), max_size=30))
def test_fuzz_frames_of_each_leg_are_numbered_in_order_and_never_overlap(chunks):
    session = started_session()
    frames = []
    for seq, (track, timestamp_ms) in enumerate(chunks, start=2):
        frames += records(session.on_text(media(seq, track, timestamp_ms), 1.0))
    for leg in ("agent", "customer"):
        mine = [f for f in frames if f.leg == leg]
        assert [f.seq for f in mine] == list(range(len(mine)))
        for before, after in zip(mine, mine[1:], strict=False):
            assert after.offset_samples >= before.offset_samples + before.num_samples


def test_two_streams_of_one_call_are_two_calls_whose_frames_never_collide():
    other = "MZ" + "2" * 32
    sessions = {STREAM: TwilioSession(), other: TwilioSession()}
    out: dict[str, list] = {}
    for sid, session in sessions.items():
        session.on_text(connected(), 100.0)
        out[sid] = records(session.on_text(start(stream=sid), 100.0))
    for n in range(5):  # both streams carry the same tracks at the same times
        for sid, session in sessions.items():
            for i, track in enumerate(("inbound", "outbound")):
                message = media(2 + 2 * n + i, track, n * 20, stream=sid)
                out[sid] += records(session.on_text(message, 100.1))

    started = {sid: recs[0] for sid, recs in out.items()}
    assert {s.metadata["twilio.call_sid"] for s in started.values()} == {CALL}
    assert len({s.call_id for s in started.values()}) == 2
    keys = [(f.call_id, f.leg, f.seq) for recs in out.values() for f in recs if isinstance(f, AudioFrame)]
    assert len(keys) == 20 and len(set(keys)) == 20  # no (call, leg, seq) twice


def test_a_stream_sid_too_long_for_a_call_id_is_refused():
    session = TwilioSession()
    session.on_text(connected(), 100.0)
    with pytest.raises(ProtocolError) as refused:
        session.on_text(start(stream="MZ" + "9" * 80), 100.0)
    assert refused.value.reason == "bad_metadata"
