"""Genesys Cloud AudioHook (protocol version 2) into the audio topic contract.

The client (Genesys) opens with `open`, offering media; the server answers `opened` at once with
the format it picked: everything slow (Kafka) happens after that reply, because Genesys gives up
on a server that takes 5 s. Audio arrives as binary frames of interleaved PCMU at 8 kHz, external
channel (customer) first, internal (agent) second. Text messages carry `seq`/`serverseq` counters
and a `position` (ISO 8601 duration). A probe connection (all-zero conversationId) is answered
and closed without a call.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ingest.events import CallEnded, CallStarted, Codec, Leg
from ingest.protocol import (
    CLOSE_NORMAL,
    Accepted,
    Action,
    Drop,
    Emit,
    Finish,
    LegTimeline,
    ProtocolError,
    Reply,
    metadata_strings,
    parse_json_message,
)

SOURCE = "audiohook"
VERSION = "2"
PROBE_CONVERSATION_ID = "00000000-0000-0000-0000-000000000000"
RATE_HZ = 8000
CHANNEL_LEGS: dict[str, Leg] = {"external": "customer", "internal": "agent"}
# The error codes AudioHook defines, per our reason codes.
ERROR_CODES: dict[str, int] = {
    "out_of_order": 409,
    "session_mismatch": 409,
    "oversized": 413,
    "unsupported_format": 415,
    "broker_unavailable": 503,
}
_DURATION = re.compile(r"^PT(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def parse_duration(text: str) -> float:
    """An AudioHook position or duration ("PT1.5S", "PT2M3.02S") in seconds."""
    match = _DURATION.match(text) if len(text) <= 40 else None
    if match is None:
        raise ProtocolError("schema_mismatch", "position/duration is not an ISO 8601 duration")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def format_duration(seconds: float) -> str:
    """Seconds as an ISO 8601 duration to the millisecond (never in exponent notation)."""
    text = f"{max(0.0, seconds):.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class MediaOffer(_Model):
    type: str
    format: str
    channels: list[str] = Field(min_length=1, max_length=2)
    rate: int


class Participant(_Model):
    id: str = Field("", max_length=128)
    ani: str = Field("", max_length=128)
    ani_name: str = Field("", alias="aniName", max_length=256)
    dnis: str = Field("", max_length=128)


class OpenParameters(_Model):
    organization_id: str = Field(alias="organizationId", min_length=1, max_length=64)
    conversation_id: str = Field(alias="conversationId", min_length=1, max_length=64)
    participant: Participant = Participant()
    media: list[MediaOffer] = Field(max_length=16)
    language: str = Field("", max_length=32)
    custom_config: dict[str, Any] = Field(default_factory=dict, alias="customConfig")
    input_variables: dict[str, Any] = Field(default_factory=dict, alias="inputVariables")


class GapParameters(_Model):
    start: str = "PT0S"
    discarded: str = "PT0S"


class CloseParameters(_Model):
    reason: str = Field("end", max_length=40)


class ErrorParameters(_Model):
    code: int = 500
    message: str = ""


class _Envelope(_Model):
    version: str
    id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)
    serverseq: int = Field(0, ge=0)
    position: str = "PT0S"


class Open(_Envelope):
    type: Literal["open"]
    parameters: OpenParameters


class Ping(_Envelope):
    type: Literal["ping"]


class Paused(_Envelope):
    type: Literal["paused"]


class Resumed(_Envelope):
    type: Literal["resumed"]
    parameters: GapParameters = GapParameters()


class Discarded(_Envelope):
    type: Literal["discarded"]
    parameters: GapParameters


class Update(_Envelope):
    type: Literal["update"]


class Close(_Envelope):
    type: Literal["close"]
    parameters: CloseParameters = CloseParameters()


class Error(_Envelope):
    type: Literal["error"]
    parameters: ErrorParameters = ErrorParameters()


ClientMessage = Annotated[
    Open | Ping | Paused | Resumed | Discarded | Update | Close | Error, Field(discriminator="type")
]
_messages: TypeAdapter[Any] = TypeAdapter(ClientMessage)


def parse_message(text: str) -> Any:
    """One client text message into its typed form; ProtocolError with a reason otherwise."""
    message = parse_json_message(text, _messages)
    if message.version != VERSION:
        raise ProtocolError("unsupported_version", message.version[:10])
    parse_duration(message.position)
    return message


def choose_media(offers: list[MediaOffer]) -> MediaOffer | None:
    """The offer we take: PCMU at 8 kHz, both channels if offered, else one known channel."""
    usable = [
        m
        for m in offers
        if m.type == "audio"
        and m.format == "PCMU"
        and m.rate == RATE_HZ
        and len(set(m.channels)) == len(m.channels)
        and set(m.channels) <= set(CHANNEL_LEGS)
    ]
    return max(usable, key=lambda m: len(m.channels), default=None)


class AudioHookSession:
    """State machine of one AudioHook connection: expect open, open, paused, closing, closed."""

    source = SOURCE

    def __init__(self, session_id: str = "", organization_id: str = "", close_wait_s: float = 5.0) -> None:
        self._session_id = session_id  # from the Audiohook-Session-Id header; messages must match
        self._organization_id = organization_id
        self._close_wait_s = close_wait_s
        self._state: Literal["expect_open", "open", "paused", "closing", "closed"] = "expect_open"
        self._client_seq = 0
        self._server_seq = 0
        self._channels: list[str] = []
        self._timeline: LegTimeline | None = None
        self._probe = False
        self._ended = False
        self.samples_received = 0  # per channel: the position of the audio stream we have

    @property
    def call_id(self) -> str | None:
        return self._timeline.call_id if self._timeline else None

    @property
    def is_probe(self) -> bool:
        return self._probe

    def on_text(self, text: str, now: float) -> list[Action]:
        message = parse_message(text)
        if self._state == "closed":
            raise ProtocolError("out_of_order", f"{message.type} after closed")
        self._check_envelope(message)
        if self._state == "closing":  # after our error or disconnect only the client's close counts
            return self._close(message, now) if isinstance(message, Close) else []
        match message:
            case Open():
                return self._open(message, now)
            case _ if self._state == "expect_open":
                raise ProtocolError("out_of_order", f"{message.type} before open")
            case Ping():
                return [self._reply("pong", {})]
            case Paused():
                self._state = "paused"
                return []
            case Resumed():
                self._state = "open"
                self._skip(parse_duration(message.parameters.discarded))
                return []
            case Discarded():
                self._skip(parse_duration(message.parameters.discarded))
                return []
            case Update():
                # The protocol answers a language update with `updated`; the language itself is not
                # used: the transcription engine is configured per deployment, not per call.
                return [self._reply("updated", {})]
            case Error():
                return []  # the client reports its own trouble; it follows up with close
            case Close():
                return self._close(message, now)
        raise ProtocolError("unknown_message")  # pragma: no cover - the union is exhaustive

    def on_binary(self, data: bytes, now: float) -> list[Action]:
        if self._state == "expect_open":
            raise ProtocolError("out_of_order", "audio before open")
        if self._state in ("paused", "closing", "closed") or self._probe:
            return [Drop(self._state if not self._probe else "probe")]
        if not self._channels:
            raise ProtocolError("out_of_order", "audio on a session that took no media")
        width = len(self._channels)
        if not data or len(data) % width:
            raise ProtocolError("bad_payload_size", f"{len(data)} bytes of {width}-channel PCMU")
        assert self._timeline is not None
        actions: list[Action] = []
        for index, channel in enumerate(self._channels):
            leg = CHANNEL_LEGS[channel]
            actions.append(Emit(self._timeline.frame(leg, data[index::width], now)))
        self.samples_received += len(data) // width
        return actions

    def on_error(self, error: ProtocolError, now: float) -> list[Action]:
        if self._state in ("closing", "closed"):
            return []
        self._state = "closing"
        code = ERROR_CODES.get(error.reason, 400 if error.reason != "internal" else 500)
        reply = self._reply("error", {"code": code, "message": f"{error.reason}: {error.detail}"[:200]})
        return [
            reply,
            *self._end("protocol_error", now),
            Finish(error.close_code, error.reason, self._close_wait_s),
        ]

    def on_disconnect(self, reason: str, now: float) -> list[Action]:
        self._state = "closed"
        return self._end(reason, now)

    def _open(self, message: Open, now: float) -> list[Action]:
        if self._state != "expect_open":
            raise ProtocolError("out_of_order", "second open")
        params = message.parameters
        if self._organization_id and params.organization_id != self._organization_id:
            raise ProtocolError("session_mismatch", "organizationId differs from the request header")
        media = choose_media(params.media)
        self._probe = params.conversation_id == PROBE_CONVERSATION_ID
        if media is None and not self._probe:
            raise ProtocolError("unsupported_format", "no PCMU 8 kHz external/internal media offered")
        self._state = "open"
        chosen = [media.model_dump()] if media is not None else []
        opened = self._reply("opened", {"startPaused": False, "media": chosen})
        if self._probe:
            return [opened, Accepted()]
        assert media is not None
        self._channels = list(media.channels)
        call_id = f"{params.conversation_id}:{message.id}"
        self._timeline = LegTimeline(call_id, Codec.MULAW, RATE_HZ)
        metadata = {
            **metadata_strings(params.custom_config, "custom."),
            **metadata_strings(params.input_variables, "input."),
            "genesys.organization_id": params.organization_id,
            "genesys.conversation_id": params.conversation_id,
            "genesys.session_id": message.id,
            "genesys.participant_id": params.participant.id,
            "genesys.ani": params.participant.ani,
            "genesys.dnis": params.participant.dnis,
            "genesys.language": params.language,
            "genesys.channels": ",".join(self._channels),
        }
        started = CallStarted(call_id=call_id, started_at=now, source=SOURCE, metadata=metadata)
        # The reply goes first: Kafka may be slow, Genesys' open timeout is not.
        return [opened, Accepted(), Emit(started)]

    def _close(self, message: Close, now: float) -> list[Action]:
        reason = "hangup" if message.parameters.reason == "end" else message.parameters.reason
        ended = self._end(reason, now)
        self._state = "closed"
        return [*ended, self._reply("closed", {}), Finish(CLOSE_NORMAL, "closed")]

    def _skip(self, seconds: float) -> None:
        if self._timeline is not None:
            for channel in self._channels:
                self._timeline.skip(CHANNEL_LEGS[channel], round(seconds * RATE_HZ))

    def _check_envelope(self, message: Any) -> None:
        if not self._session_id:
            self._session_id = message.id
        elif message.id != self._session_id:
            raise ProtocolError("session_mismatch", "message id differs from the session id")
        if message.seq != self._client_seq + 1:
            raise ProtocolError("out_of_order", f"seq {message.seq} after {self._client_seq}")
        if message.serverseq > self._server_seq:
            raise ProtocolError("out_of_order", f"serverseq {message.serverseq} ahead of {self._server_seq}")
        self._client_seq = message.seq

    def _reply(self, kind: str, parameters: dict[str, Any]) -> Reply:
        self._server_seq += 1
        return Reply(
            {
                "version": VERSION,
                "type": kind,
                "seq": self._server_seq,
                "clientseq": self._client_seq,
                "id": self._session_id or "unknown",
                "parameters": parameters,
            }
        )

    def _end(self, reason: str, now: float) -> list[Action]:
        if self._timeline is None or self._ended:
            return []
        self._ended = True
        return [Emit(CallEnded(call_id=self._timeline.call_id, ended_at=now, reason=reason))]
