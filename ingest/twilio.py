"""Twilio Media Streams (`<Connect><Stream>` / `<Start><Stream>`) into the audio topic contract.

Twilio sends JSON text messages: `connected`, `start` (call and stream ids, tracks, media format,
`<Parameter>` custom parameters), `media` (20 ms of base64 mu-law 8 kHz per track), `mark`,
`dtmf`, `stop`. The inbound track is the caller (customer), the outbound track what Twilio plays
to the caller (agent). Twilio has no error message: a bad stream is closed with a close code.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ingest.events import MAX_FRAME_BYTES, CallEnded, CallStarted, Codec, Leg
from ingest.protocol import (
    CLOSE_NORMAL,
    Accepted,
    Action,
    Emit,
    Finish,
    LegTimeline,
    ProtocolError,
    metadata_strings,
    parse_json_message,
)

SOURCE = "twilio"
TRACK_LEGS: dict[str, Leg] = {"inbound": "customer", "outbound": "agent"}
_MAX_BASE64_CHARS = (MAX_FRAME_BYTES + 2) // 3 * 4
_CALL_FIELDS = ("agent_id", "queue", "direction")  # custom parameters that fill CallStarted fields


def twilio_call_id(call_sid: str, stream_sid: str) -> str:
    """The call id of one Media Stream: a Twilio call may carry several streams at once (two
    `<Start><Stream>`s, a `<Connect><Stream>` after a `<Start>`), and each is a call of its own
    here, or their frames would collide; the callSid travels in the metadata."""
    return f"{call_sid}-{stream_sid}" if stream_sid else call_sid


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Connected(_Message):
    event: Literal["connected"]
    protocol: str = ""
    version: str = ""


class MediaFormat(_Message):
    encoding: str
    sample_rate_hz: int = Field(alias="sampleRate")
    channels: int = 1


class StartInfo(_Message):
    account_sid: str = Field("", alias="accountSid")
    stream_sid: str = Field("", alias="streamSid")
    call_sid: str = Field(alias="callSid", min_length=1, max_length=63)  # with the streamSid: <= 128
    tracks: list[Literal["inbound", "outbound"]] = Field(default_factory=lambda: ["inbound"], min_length=1)
    custom_parameters: dict[str, Any] = Field(default_factory=dict, alias="customParameters")
    media_format: MediaFormat = Field(alias="mediaFormat")


class Start(_Message):
    event: Literal["start"]
    sequence_number: int = Field(0, alias="sequenceNumber")
    stream_sid: str = Field("", alias="streamSid")
    start: StartInfo


class MediaInfo(_Message):
    track: str
    chunk: int = 0
    timestamp_ms: int = Field(0, alias="timestamp", ge=0)
    payload: str = Field(max_length=_MAX_BASE64_CHARS)


class Media(_Message):
    event: Literal["media"]
    sequence_number: int = Field(0, alias="sequenceNumber")
    stream_sid: str = Field("", alias="streamSid")
    media: MediaInfo


class Stop(_Message):
    event: Literal["stop"]
    sequence_number: int = Field(0, alias="sequenceNumber")
    stream_sid: str = Field("", alias="streamSid")


class Mark(_Message):
    event: Literal["mark"]
    sequence_number: int = Field(0, alias="sequenceNumber")
    stream_sid: str = Field("", alias="streamSid")


class Dtmf(_Message):
    event: Literal["dtmf"]
    sequence_number: int = Field(0, alias="sequenceNumber")
    stream_sid: str = Field("", alias="streamSid")


TwilioMessage = Annotated[Connected | Start | Media | Stop | Mark | Dtmf, Field(discriminator="event")]
_messages: TypeAdapter[Any] = TypeAdapter(TwilioMessage)


def parse_message(text: str) -> Any:
    """One Twilio text message into its typed form; ProtocolError with a reason otherwise."""
    return parse_json_message(text, _messages)


def decode_payload(payload: str) -> bytes:
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_base64") from None
    if not audio:
        raise ProtocolError("bad_payload_size", "empty media payload")
    return audio


class TwilioSession:
    """State machine of one Media Streams connection: before start, streaming, stopped."""

    source = SOURCE

    def __init__(self) -> None:
        self._timeline: LegTimeline | None = None
        self._stream_sid = ""
        self._tracks: frozenset[str] = frozenset()
        self._last_sequence = 0
        self._ended = False

    @property
    def call_id(self) -> str | None:
        return self._timeline.call_id if self._timeline else None

    def on_text(self, text: str, now: float) -> list[Action]:
        message = parse_message(text)
        if self._ended:
            raise ProtocolError("out_of_order", f"{message.event} after stop")
        if not isinstance(message, Connected):
            self._check_sequence(message.sequence_number)
        match message:
            case Connected():
                if self._timeline is not None:
                    raise ProtocolError("out_of_order", "connected after start")
                return []
            case Start():
                return self._start(message, now)
            case Media():
                return self._media(message, now)
            case Stop():
                self._require_started("stop", message.stream_sid)
                return self._end("hangup", now) + [Finish(CLOSE_NORMAL, "stream stopped")]
            case Mark() | Dtmf():
                # Marks echo audio we would play (we play none); digits may be card numbers: both
                # are acknowledged and not forwarded or logged.
                self._require_started(message.event, message.stream_sid)
                return []
        raise ProtocolError("unknown_message")  # pragma: no cover - the union is exhaustive

    def on_binary(self, data: bytes, now: float) -> list[Action]:
        raise ProtocolError("unexpected_binary", "Media Streams sends text messages only")

    def on_error(self, error: ProtocolError, now: float) -> list[Action]:
        return self._end("protocol_error", now) + [Finish(error.close_code, error.reason)]

    def on_disconnect(self, reason: str, now: float) -> list[Action]:
        return self._end(reason, now)

    def _start(self, message: Start, now: float) -> list[Action]:
        if self._timeline is not None:
            raise ProtocolError("out_of_order", "second start")
        fmt = message.start.media_format
        if (fmt.encoding, fmt.sample_rate_hz, fmt.channels) != ("audio/x-mulaw", 8000, 1):
            raise ProtocolError("unsupported_format", f"{fmt.encoding[:40]} {fmt.sample_rate_hz} Hz")
        info = message.start
        custom = metadata_strings(info.custom_parameters)
        direction = custom.get("direction", "inbound")
        if direction not in ("inbound", "outbound"):
            raise ProtocolError("bad_metadata", "direction must be inbound or outbound")
        self._stream_sid = message.stream_sid or info.stream_sid
        if len(self._stream_sid) > 64:
            raise ProtocolError("bad_metadata", "streamSid longer than 64 characters")
        call_id = twilio_call_id(info.call_sid, self._stream_sid)
        self._tracks = frozenset(info.tracks)
        self._timeline = LegTimeline(call_id, Codec.MULAW, 8000)
        started = CallStarted(
            call_id=call_id,
            started_at=now,
            agent_id=custom.get("agent_id", ""),
            queue=custom.get("queue", ""),
            direction=direction,
            source=SOURCE,
            metadata={
                **{k: v for k, v in custom.items() if k not in _CALL_FIELDS},
                "twilio.account_sid": info.account_sid,
                "twilio.call_sid": info.call_sid,
                "twilio.stream_sid": self._stream_sid,
                "twilio.tracks": ",".join(sorted(self._tracks)),
            },
        )
        return [Accepted(), Emit(started)]

    def _media(self, message: Media, now: float) -> list[Action]:
        timeline = self._require_started("media", message.stream_sid)
        media = message.media
        if media.track not in self._tracks:
            raise ProtocolError("unknown_track", media.track[:20])
        audio = decode_payload(media.payload)
        leg = TRACK_LEGS[media.track]
        # Twilio stamps each chunk with its time in the stream: a late chunk leaves a gap, never
        # a shift of everything after it.
        return [Emit(timeline.frame(leg, audio, now, at_sample=media.timestamp_ms * 8))]

    def _require_started(self, event: str, stream_sid: str) -> LegTimeline:
        if self._timeline is None:
            raise ProtocolError("out_of_order", f"{event} before start")
        if stream_sid and self._stream_sid and stream_sid != self._stream_sid:
            raise ProtocolError("stream_mismatch", "streamSid differs from the start message")
        return self._timeline

    def _check_sequence(self, number: int) -> None:
        if number and number <= self._last_sequence:
            raise ProtocolError("out_of_order", f"sequenceNumber {number} after {self._last_sequence}")
        self._last_sequence = max(self._last_sequence, number)

    def _end(self, reason: str, now: float) -> list[Action]:
        if self._timeline is None or self._ended:
            self._ended = True
            return []
        self._ended = True
        return [Emit(CallEnded(call_id=self._timeline.call_id, ended_at=now, reason=reason))]
