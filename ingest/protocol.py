"""What every telephony adapter shares: the actions a protocol session asks for, its errors, and
per-leg frame numbering.

A session (twilio.py, audiohook.py, generic.py) is a pure state machine: it takes one WebSocket
message and the wall time it arrived, and returns actions; the gateway performs them. Nothing
here touches a socket or a broker, so every protocol rule is tested without either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, TypeAdapter, ValidationError

from ingest.events import BYTES_PER_SAMPLE, MAX_FRAME_BYTES, AudioFrame, AudioRecord, Codec, Leg

# WebSocket close codes (RFC 6455 section 7.4.1) the gateway ends a connection with.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

MAX_TEXT_MESSAGE_BYTES = 16_000  # control messages are small; a bigger one is not from a real source
MAX_METADATA_ITEMS = 64
MAX_METADATA_VALUE_CHARS = 1_024

# Default close code per error reason, for protocols whose only error signal is the close code.
CLOSE_CODES: dict[str, int] = {
    "invalid_json": CLOSE_INVALID_PAYLOAD,
    "invalid_base64": CLOSE_INVALID_PAYLOAD,
    "bad_payload_size": CLOSE_INVALID_PAYLOAD,
    "schema_mismatch": CLOSE_INVALID_PAYLOAD,
    "bad_metadata": CLOSE_INVALID_PAYLOAD,
    "oversized": CLOSE_TOO_BIG,
    "out_of_order": CLOSE_PROTOCOL_ERROR,
    "unknown_message": CLOSE_PROTOCOL_ERROR,
    "unexpected_binary": CLOSE_UNSUPPORTED_DATA,
    "unsupported_format": CLOSE_UNSUPPORTED_DATA,
    "unsupported_version": CLOSE_PROTOCOL_ERROR,
    "stream_mismatch": CLOSE_PROTOCOL_ERROR,
    "unknown_track": CLOSE_PROTOCOL_ERROR,
    "broker_unavailable": CLOSE_TRY_AGAIN_LATER,
}


class ProtocolError(ValueError):
    """A message the protocol does not allow here; `reason` is a short fixed code for dead letters."""

    retryable = False

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail[:300]

    @property
    def close_code(self) -> int:
        return CLOSE_CODES.get(self.reason, CLOSE_PROTOCOL_ERROR)


# --- Actions a session returns; the gateway performs them in order ---


@dataclass(frozen=True, slots=True)
class Emit:
    """Put a record on the audio topic, keyed by its call_id."""

    record: AudioRecord


@dataclass(frozen=True, slots=True)
class Reply:
    """Send one JSON text message to the client."""

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Accepted:
    """The call is accepted (opened/started): the moment open latency is measured to."""


@dataclass(frozen=True, slots=True)
class Drop:
    """A frame received and deliberately not forwarded (counted, never silent)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    """Close the socket with `code`. With grace_s > 0, first wait that long for the client's own
    closing handshake (a session answers it with a Finish of grace 0)."""

    code: int = CLOSE_NORMAL
    reason: str = ""
    grace_s: float = 0.0


Action = Emit | Reply | Accepted | Drop | Finish


class Session(Protocol):
    """One connection's protocol state machine."""

    source: str

    @property
    def call_id(self) -> str | None: ...

    def on_text(self, text: str, now: float) -> list[Action]: ...

    def on_binary(self, data: bytes, now: float) -> list[Action]: ...

    def on_error(self, error: ProtocolError, now: float) -> list[Action]:
        """Actions after a ProtocolError: tell the client, end the call, close."""
        ...

    def on_disconnect(self, reason: str, now: float) -> list[Action]:
        """The socket went away: end the call if it was started and not ended."""
        ...


# --- Parsing helpers shared by the adapters ---


def parse_json_message(text: str, adapter: TypeAdapter[Any]) -> Any:
    """JSON text into a tagged pydantic union; ProtocolError with a fixed reason otherwise."""
    if len(text) > MAX_TEXT_MESSAGE_BYTES:
        raise ProtocolError("oversized", f"{len(text)} characters of text")
    try:
        return adapter.validate_json(text)  # one pass in pydantic-core: half the cost of json.loads first
    except ValidationError as exc:
        errors = exc.errors()
        kinds = {err["type"] for err in errors}
        if "union_tag_invalid" in kinds:
            raise ProtocolError("unknown_message") from None
        if "union_tag_not_found" in kinds:
            raise ProtocolError("schema_mismatch", "no message type") from None
        if "json_invalid" in kinds or any(not err["loc"] for err in errors):
            raise ProtocolError("invalid_json", "not a JSON object") from None
        raise ProtocolError("schema_mismatch", _fields(exc)) from None


def validate_model(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("schema_mismatch", _fields(exc)) from None


def _fields(exc: ValidationError) -> str:
    # Field names only, never values: they may carry phone numbers.
    return ",".join(sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()}))[:200]


def metadata_strings(items: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flat str -> str metadata for CallStarted; bounded in count and size."""
    if len(items) > MAX_METADATA_ITEMS:
        raise ProtocolError("bad_metadata", f"{len(items)} items, at most {MAX_METADATA_ITEMS}")
    out: dict[str, str] = {}
    for key, value in items.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if len(key) > 128 or len(text) > MAX_METADATA_VALUE_CHARS:
            raise ProtocolError("bad_metadata", "a key or value is too long")
        out[prefix + key] = text
    return out


@dataclass
class LegTimeline:
    """Numbers one call's frames per leg: seq from 0, offset_samples at the leg's sample rate."""

    call_id: str
    codec: Codec
    sample_rate_hz: int
    _seq: dict[Leg, int] = field(default_factory=dict)
    _next_sample: dict[Leg, int] = field(default_factory=dict)

    def next_offset(self, leg: Leg) -> int:
        return self._next_sample.get(leg, 0)

    def skip(self, leg: Leg, samples: int) -> None:
        """Advance a leg over audio the source did not send (discarded, paused, a gap)."""
        self._next_sample[leg] = self.next_offset(leg) + max(0, samples)

    def frame(self, leg: Leg, payload: bytes, received_at: float, at_sample: int | None = None) -> AudioFrame:
        """The next frame of `leg`; `at_sample` places it later than the running offset (a gap)."""
        width = BYTES_PER_SAMPLE[self.codec]
        if not payload or len(payload) % width:
            raise ProtocolError("bad_payload_size", f"{len(payload)} bytes of {self.codec.name}")
        if len(payload) > MAX_FRAME_BYTES:
            raise ProtocolError("oversized", f"{len(payload)} bytes of audio in one frame")
        offset = self.next_offset(leg)
        if at_sample is not None and at_sample > offset:
            offset = at_sample
        samples = len(payload) // width
        seq = self._seq.get(leg, 0)
        self._seq[leg] = seq + 1
        self._next_sample[leg] = offset + samples
        return AudioFrame(
            call_id=self.call_id,
            leg=leg,
            codec=self.codec,
            sample_rate_hz=self.sample_rate_hz,
            seq=seq,
            offset_samples=offset,
            # The frame arrived when its last sample was captured (plus transit): date its first one.
            captured_at=received_at - samples / self.sample_rate_hz,
            payload=payload,
        )
