"""Genesys AudioHook adapter: message sequences from the AudioHook protocol (v2), and fuzzing."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.audiohook import PROBE_CONVERSATION_ID, AudioHookSession, format_duration, parse_duration
from ingest.events import AudioFrame, CallEnded, CallStarted, Codec
from ingest.protocol import Accepted, Drop, Emit, Finish, ProtocolError, Reply

SESSION = "e160e428-53e2-487c-977d-96989bf5c99d"
ORG = "d7934305-0972-4844-938e-9060eef73d05"
CONVERSATION = "090eaa2f-72fa-480a-83e0-8667ff89c0ec"
STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}


class Client:
    """Builds client messages with the counters the protocol requires."""

    def __init__(self) -> None:
        self.seq = 0
        self.serverseq = 0

    def msg(self, kind: str, parameters: dict | None = None, **overrides) -> str:
        self.seq += 1
        body = {
            "version": "2",
            "id": SESSION,
            "type": kind,
            "seq": self.seq,
            "serverseq": self.serverseq,
            "position": "PT0S",
            "parameters": parameters or {},
        }
        return json.dumps(body | overrides)

    def open(self, conversation: str = CONVERSATION, media: list | None = None) -> str:
        return self.msg(
            "open",
            {
                "organizationId": ORG,
                "conversationId": conversation,
                "participant": {"id": "p-1", "ani": "+15551234", "aniName": "", "dnis": "+18005550100"},
                "media": media if media is not None else [STEREO, {**STEREO, "channels": ["external"]}],
                "language": "en-US",
                "customConfig": {"tenant": "acme"},
            },
        )

    def seen(self, actions) -> None:
        for action in actions:
            if isinstance(action, Reply):
                self.serverseq = action.message["seq"]


def replies(actions) -> list[dict]:
    return [a.message for a in actions if isinstance(a, Reply)]


def records(actions) -> list:
    return [a.record for a in actions if isinstance(a, Emit)]


def opened_session() -> tuple[AudioHookSession, Client]:
    session, client = AudioHookSession(session_id=SESSION, organization_id=ORG), Client()
    client.seen(session.on_text(client.open(), 10.0))
    return session, client


def test_open_is_answered_opened_first_with_stereo_pcmu_then_the_call_starts():
    session, client = AudioHookSession(session_id=SESSION, organization_id=ORG), Client()
    actions = session.on_text(client.open(), 10.0)
    assert isinstance(actions[0], Reply) and isinstance(actions[1], Accepted)  # reply before any Kafka write
    opened = actions[0].message
    assert (opened["type"], opened["seq"], opened["clientseq"], opened["id"]) == ("opened", 1, 1, SESSION)
    assert opened["parameters"]["media"] == [STEREO]
    [started] = records(actions)
    assert isinstance(started, CallStarted) and started.source == "audiohook"
    assert started.call_id == f"{CONVERSATION}:{SESSION}"
    assert started.metadata["genesys.conversation_id"] == CONVERSATION
    assert started.metadata["custom.tenant"] == "acme"


def test_stereo_frames_split_external_to_customer_and_internal_to_agent_with_positions():
    session, _ = opened_session()
    external, internal = bytes(range(0, 160)), bytes(range(50, 210))
    stereo = bytearray(320)
    stereo[0::2], stereo[1::2] = external, internal
    frames = records(session.on_binary(bytes(stereo), 11.0)) + records(
        session.on_binary(bytes(stereo), 11.02)
    )
    assert all(isinstance(f, AudioFrame) and f.codec is Codec.MULAW for f in frames)
    customer = [f for f in frames if f.leg == "customer"]
    agent = [f for f in frames if f.leg == "agent"]
    assert customer[0].payload == external and agent[0].payload == internal
    assert [f.offset_samples for f in customer] == [0, 160] and [f.seq for f in agent] == [0, 1]
    assert session.samples_received == 320


def test_ping_is_answered_pong_with_the_counters():
    session, client = opened_session()
    [pong] = replies(session.on_text(client.msg("ping", {"rtt": "PT0.05S"}), 12.0))
    assert (pong["type"], pong["seq"], pong["clientseq"]) == ("pong", 2, 2)


def test_paused_audio_is_dropped_and_resumed_audio_continues_after_the_discarded_gap():
    session, client = opened_session()
    session.on_binary(b"\xff" * 320, 11.0)
    session.on_text(client.msg("paused"), 11.1)
    assert session.on_binary(b"\xff" * 320, 11.2) == [Drop("paused")]
    session.on_text(client.msg("resumed", {"start": "PT0.02S", "discarded": "PT1.5S"}), 12.6)
    [frame, _] = records(session.on_binary(b"\xff" * 320, 12.7))
    assert frame.offset_samples == 160 + 12_000  # 20 ms received, then 1.5 s the client discarded


def test_discarded_audio_advances_both_legs():
    session, client = opened_session()
    session.on_text(client.msg("discarded", {"start": "PT0S", "discarded": "PT0.5S"}), 11.0)
    frames = records(session.on_binary(b"\xff" * 320, 11.1))
    assert {f.offset_samples for f in frames} == {4_000}


def test_a_language_update_is_acknowledged_with_updated():
    session, client = opened_session()
    [reply] = replies(session.on_text(client.msg("update", {"language": "fr-FR"}), 11.0))
    assert reply["type"] == "updated"


def test_close_ends_the_call_then_answers_closed():
    session, client = opened_session()
    actions = session.on_text(client.msg("close", {"reason": "end"}), 20.0)
    [ended] = records(actions)
    assert isinstance(ended, CallEnded) and ended.reason == "hangup"
    assert replies(actions)[0]["type"] == "closed"
    assert actions[-1] == Finish(1000, "closed")
    with pytest.raises(ProtocolError, match="out_of_order"):
        session.on_text(client.msg("ping"), 21.0)


def test_a_probe_connection_is_opened_and_closed_without_a_call():
    session, client = AudioHookSession(session_id=SESSION), Client()
    actions = session.on_text(client.open(conversation=PROBE_CONVERSATION_ID), 1.0)
    assert replies(actions)[0]["type"] == "opened" and records(actions) == []
    assert session.is_probe and session.call_id is None
    actions = session.on_text(client.msg("close", {"reason": "end"}), 1.1)
    assert records(actions) == [] and replies(actions)[0]["type"] == "closed"


def test_client_error_message_is_accepted_and_its_close_follows():
    session, client = opened_session()
    assert session.on_text(client.msg("error", {"code": 500, "message": "client trouble"}), 11.0) == []
    assert replies(session.on_text(client.msg("close", {"reason": "error"}), 11.1))[0]["type"] == "closed"


def test_a_protocol_error_is_reported_then_the_server_waits_for_the_clients_close():
    session, client = opened_session()
    with pytest.raises(ProtocolError) as caught:
        session.on_binary(b"\xff" * 321, 11.0)  # not a whole number of stereo samples
    actions = session.on_error(caught.value, 11.0)
    error = replies(actions)[0]
    assert error["type"] == "error" and error["parameters"]["code"] == 400
    assert [r.reason for r in records(actions)] == ["protocol_error"]
    finish = actions[-1]
    assert isinstance(finish, Finish) and finish.grace_s > 0 and finish.code == 1007
    client.seen(actions)
    assert session.on_binary(b"\xff" * 320, 11.1) == [Drop("closing")]
    closing = session.on_text(client.msg("close", {"reason": "error"}), 11.2)
    assert replies(closing)[0]["type"] == "closed" and closing[-1].grace_s == 0
    assert session.on_error(caught.value, 11.3) == []  # nothing twice


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda c: c.msg("ping"), "out_of_order"),  # before open
        (lambda c: c.open(media=[{**STEREO, "format": "L16"}]), "unsupported_format"),
        (lambda c: c.open().replace('"version": "2"', '"version": "1"'), "unsupported_version"),
        (lambda c: c.open().replace(SESSION, str(uuid.uuid4())), "session_mismatch"),
        (lambda c: c.open().replace(ORG, str(uuid.uuid4())), "session_mismatch"),
        (lambda c: c.msg("open", {}, seq=5), "schema_mismatch"),
        (lambda c: c.msg("ping", position="1.5 seconds"), "schema_mismatch"),
        (lambda c: "not json", "invalid_json"),
    ],
)
def test_bad_opening_messages_are_refused(build, reason):
    session = AudioHookSession(session_id=SESSION, organization_id=ORG)
    with pytest.raises(ProtocolError) as caught:
        session.on_text(build(Client()), 1.0)
    assert caught.value.reason == reason


def test_counters_must_follow_the_protocol():
    session, client = opened_session()
    client.seq += 1  # a skipped client seq
    with pytest.raises(ProtocolError, match="out_of_order"):
        session.on_text(client.msg("ping"), 11.0)
    session, client = opened_session()
    with pytest.raises(ProtocolError, match="out_of_order"):
        session.on_text(client.msg("ping", serverseq=9), 11.0)  # acknowledges replies never sent
    session, client = opened_session()
    with pytest.raises(ProtocolError, match="out_of_order"):
        session.on_text(client.open(), 11.0)  # a second open


def test_audio_before_open_is_out_of_order():
    with pytest.raises(ProtocolError, match="out_of_order"):
        AudioHookSession().on_binary(b"\xff" * 320, 1.0)


def test_a_socket_lost_mid_call_ends_it_as_disconnected():
    session, _ = opened_session()
    [ended] = records(session.on_disconnect("disconnected", 30.0))
    assert ended.reason == "disconnected"


@pytest.mark.parametrize(
    ("text", "seconds"), [("PT0S", 0.0), ("PT1.5S", 1.5), ("PT2M3.25S", 123.25), ("PT1H", 3600.0)]
)
def test_positions_are_iso_8601_durations(text, seconds):
    assert parse_duration(text) == seconds


# --- Fuzzing ---


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_fuzz_durations_round_trip_to_the_millisecond(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=0.0006)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text_is_handled_or_refused_with_a_protocol_error(text):
    session, _ = opened_session()
    try:
        session.on_text(text, 11.0)
    except ProtocolError as error:
        assert error.reason


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["open", "ping", "paused", "resumed", "discarded", "update", "close", "error", "x"]),
    st.dictionaries(
        st.sampled_from(["version", "id", "seq", "serverseq", "position", "parameters"]),
        st.none()
        | st.integers()
        | st.text(max_size=12)
        | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        max_size=4,
    ),
)
def test_fuzz_structured_messages_never_escape_as_other_errors(kind, fields):
    session, client = opened_session()
    try:
        session.on_text(json.dumps(json.loads(client.msg(kind)) | fields), 11.0)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=8))
def test_fuzz_binary_frames_either_become_both_legs_or_a_protocol_error(chunks):
    session, _ = opened_session()
    for chunk in chunks:
        try:
            frames = records(session.on_binary(chunk, 11.0))
        except ProtocolError as error:
            assert error.reason == "bad_payload_size" and len(chunk) % 2 == 1 or not chunk
            continue
        assert {f.leg for f in frames} == {"customer", "agent"}
        assert all(len(f.payload) == len(chunk) // 2 for f in frames)
