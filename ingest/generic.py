"""The generic WebSocket protocol for PBXs and SBCs (Asterisk, FreeSWITCH media forks and the like).

    client -> {"type": "start", "call_id": "...", "codec": "mulaw"|"pcm16", "sample_rate_hz": 8000|16000,
               "legs": ["agent", "customer"], "agent_id": "", "queue": "", "direction": "inbound",
               "metadata": {...}}
    server -> {"type": "started", "call_id": "..."}
    client -> binary frames: one byte leg (0 = agent, 1 = customer), then audio in the call's codec
    client -> {"type": "end", "reason": "hangup"}
    server -> {"type": "ended", "call_id": "..."}, then close 1000

On a bad message the server answers {"type": "error", "reason": "...", "message": "..."} and
closes with a close code (README, "Telephony sources").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ingest.events import LEGS, CallEnded, CallStarted, Codec, Direction, Leg
from ingest.protocol import (
    CLOSE_NORMAL,
    Accepted,
    Action,
    Emit,
    Finish,
    LegTimeline,
    ProtocolError,
    Reply,
    metadata_strings,
    parse_json_message,
)

SOURCE = "generic"
LEG_CODES: dict[Leg, int] = {"agent": 0, "customer": 1}
_LEG_BY_CODE: dict[int, Leg] = {code: leg for leg, code in LEG_CODES.items()}
_CODECS = {"mulaw": Codec.MULAW, "pcm16": Codec.PCM16}


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Start(_Message):
    type: Literal["start"]
    call_id: str = Field(min_length=1, max_length=128)
    codec: Literal["mulaw", "pcm16"]
    sample_rate_hz: Literal[8000, 16000]
    legs: list[Leg] = Field(default_factory=lambda: list(LEGS), min_length=1, max_length=2)
    agent_id: str = Field("", max_length=128)
    queue: str = Field("", max_length=128)
    direction: Direction = "inbound"
    metadata: dict[str, Any] = Field(default_factory=dict)


class End(_Message):
    type: Literal["end"]
    reason: str = Field("hangup", min_length=1, max_length=40)


GenericMessage = Annotated[Start | End, Field(discriminator="type")]
_messages: TypeAdapter[Any] = TypeAdapter(GenericMessage)


def parse_message(text: str) -> Any:
    return parse_json_message(text, _messages)


def audio_message(leg: Leg, payload: bytes) -> bytes:
    """A binary frame of the generic protocol (for clients)."""
    return bytes((LEG_CODES[leg],)) + payload


class GenericSession:
    """State machine of one generic connection: before start, streaming, ended."""

    source = SOURCE

    def __init__(self) -> None:
        self._timeline: LegTimeline | None = None
        self._legs: frozenset[Leg] = frozenset()
        self._ended = False
        self._closing = False

    @property
    def call_id(self) -> str | None:
        return self._timeline.call_id if self._timeline else None

    def on_text(self, text: str, now: float) -> list[Action]:
        message = parse_message(text)
        if self._ended:
            raise ProtocolError("out_of_order", f"{message.type} after end")
        match message:
            case Start():
                return self._start(message, now)
            case End():
                if self._timeline is None:
                    raise ProtocolError("out_of_order", "end before start")
                reply = Reply({"type": "ended", "call_id": self._timeline.call_id})
                return [*self._end(message.reason, now), reply, Finish(CLOSE_NORMAL, "call ended")]
        raise ProtocolError("unknown_message")  # pragma: no cover - the union is exhaustive

    def on_binary(self, data: bytes, now: float) -> list[Action]:
        if self._timeline is None or self._ended:
            raise ProtocolError(
                "out_of_order", "audio before start" if not self._ended else "audio after end"
            )
        if not data:
            raise ProtocolError("bad_payload_size", "empty frame")
        leg = _LEG_BY_CODE.get(data[0])
        if leg is None or leg not in self._legs:
            raise ProtocolError("unknown_track", f"leg byte {data[0]}")
        return [Emit(self._timeline.frame(leg, data[1:], now))]

    def on_error(self, error: ProtocolError, now: float) -> list[Action]:
        if self._closing:
            return []
        self._closing = True
        reply = Reply({"type": "error", "reason": error.reason, "message": error.detail})
        return [reply, *self._end("protocol_error", now), Finish(error.close_code, error.reason)]

    def on_disconnect(self, reason: str, now: float) -> list[Action]:
        return self._end(reason, now)

    def _start(self, message: Start, now: float) -> list[Action]:
        if self._timeline is not None:
            raise ProtocolError("out_of_order", "second start")
        metadata = metadata_strings(message.metadata)
        self._legs = frozenset(message.legs)
        self._timeline = LegTimeline(message.call_id, _CODECS[message.codec], message.sample_rate_hz)
        started = CallStarted(
            call_id=message.call_id,
            started_at=now,
            agent_id=message.agent_id,
            queue=message.queue,
            direction=message.direction,
            source=SOURCE,
            metadata=metadata,
        )
        return [Reply({"type": "started", "call_id": message.call_id}), Accepted(), Emit(started)]

    def _end(self, reason: str, now: float) -> list[Action]:
        if self._timeline is None or self._ended:
            self._ended = True
            return []
        self._ended = True
        return [Emit(CallEnded(call_id=self._timeline.call_id, ended_at=now, reason=reason))]
