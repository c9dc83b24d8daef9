"""Contract of the audio topic: call lifecycle as JSON, audio frames as a compact binary record.

Key = call_id. Both legs, the call's start and its end travel in one partition, in order.
Audio stays in its source codec; the transcription worker decodes it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from pipeline.contract import Event, InvalidEvent, parse_json_event

Leg = Literal["agent", "customer"]
LEGS: tuple[Leg, Leg] = ("agent", "customer")
Direction = Literal["inbound", "outbound"]


class CallStarted(Event):
    type: Literal["call.started"] = "call.started"
    call_id: str = Field(min_length=1, max_length=128)
    started_at: float  # epoch seconds, source clock
    agent_id: str = ""
    queue: str = ""
    direction: Direction = "inbound"
    source: str = "replay"  # which ingest adapter produced the call
    metadata: dict[str, str] = Field(default_factory=dict)


class CallEnded(Event):
    type: Literal["call.ended"] = "call.ended"
    call_id: str = Field(min_length=1, max_length=128)
    ended_at: float
    reason: str = "hangup"


CallEvent = Annotated[CallStarted | CallEnded, Field(discriminator="type")]
_call_event = TypeAdapter(CallEvent)


class Codec(IntEnum):
    PCM16 = 1  # signed 16-bit little-endian
    MULAW = 2  # G.711 mu-law


SUPPORTED_FORMATS: frozenset[tuple[Codec, int]] = frozenset(
    {(Codec.MULAW, 8000), (Codec.PCM16, 8000), (Codec.PCM16, 16000)}
)
BYTES_PER_SAMPLE = {Codec.PCM16: 2, Codec.MULAW: 1}
MAX_FRAME_BYTES = 64_000  # 1 s of 16 kHz PCM16 is 32 000 bytes: anything bigger is not a live frame

_MAGIC = b"CSAF"
_FORMAT_VERSION = 1
# magic, version, leg, codec, sample rate, seq, offset samples, captured_at (us), id len, payload len
_HEADER = struct.Struct("<4sBBBIIQQHI")
_LEG_CODES = {"agent": 0, "customer": 1}
_LEG_NAMES = {v: k for k, v in _LEG_CODES.items()}


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A short chunk (normally 20 ms) of one leg's audio in its source codec."""

    call_id: str
    leg: Leg
    codec: Codec
    sample_rate_hz: int
    seq: int  # per leg, from 0, +1 per frame
    offset_samples: int  # position of the first sample within the leg, at sample_rate_hz
    captured_at: float  # epoch seconds when the first sample was captured
    payload: bytes

    @property
    def num_samples(self) -> int:
        return len(self.payload) // BYTES_PER_SAMPLE[self.codec]

    @property
    def offset_ms(self) -> int:
        return self.offset_samples * 1000 // self.sample_rate_hz

    def to_bytes(self) -> bytes:
        call_id = self.call_id.encode()
        header = _HEADER.pack(
            _MAGIC,
            _FORMAT_VERSION,
            _LEG_CODES[self.leg],
            int(self.codec),
            self.sample_rate_hz,
            self.seq,
            self.offset_samples,
            round(self.captured_at * 1_000_000),
            len(call_id),
            len(self.payload),
        )
        return header + call_id + self.payload


def is_audio_frame(raw: bytes | None) -> bool:
    return raw is not None and raw[:4] == _MAGIC


def parse_audio_frame(raw: bytes) -> AudioFrame:
    """Decode and validate a binary frame; raise InvalidEvent with a reason code."""
    if len(raw) > MAX_FRAME_BYTES + _HEADER.size + 256:
        raise InvalidEvent("oversized", f"{len(raw)} bytes")
    if len(raw) < _HEADER.size:
        raise InvalidEvent("truncated_frame", f"{len(raw)} bytes, header needs {_HEADER.size}")
    magic, version, leg, codec, rate, seq, offset, captured_us, id_len, payload_len = _HEADER.unpack_from(raw)
    if magic != _MAGIC:
        raise InvalidEvent("not_an_audio_frame")
    if version != _FORMAT_VERSION:
        raise InvalidEvent("unsupported_version", str(version))
    if len(raw) != _HEADER.size + id_len + payload_len:
        raise InvalidEvent(
            "truncated_frame", f"{len(raw)} bytes, header declares {_HEADER.size + id_len + payload_len}"
        )
    if leg not in _LEG_NAMES:
        raise InvalidEvent("unknown_leg", str(leg))
    try:
        codec_value = Codec(codec)
    except ValueError:
        raise InvalidEvent("unknown_codec", str(codec)) from None
    if (codec_value, rate) not in SUPPORTED_FORMATS:
        raise InvalidEvent("unsupported_format", f"{codec_value.name} at {rate} Hz")
    if payload_len == 0 or payload_len % BYTES_PER_SAMPLE[codec_value]:
        raise InvalidEvent("bad_payload_size", f"{payload_len} bytes of {codec_value.name}")
    try:
        call_id = raw[_HEADER.size : _HEADER.size + id_len].decode()
    except UnicodeDecodeError:
        raise InvalidEvent("bad_call_id") from None
    if not call_id:
        raise InvalidEvent("bad_call_id")
    return AudioFrame(
        call_id=call_id,
        leg=_LEG_NAMES[leg],
        codec=codec_value,
        sample_rate_hz=rate,
        seq=seq,
        offset_samples=offset,
        captured_at=captured_us / 1_000_000,
        payload=raw[_HEADER.size + id_len :],
    )


AudioRecord = AudioFrame | CallStarted | CallEnded


def parse_audio_record(raw: bytes | None) -> AudioRecord:
    """Parse any value on the audio topic into its typed form."""
    if is_audio_frame(raw):
        assert raw is not None
        return parse_audio_frame(raw)
    return parse_json_event(_call_event, raw)


def encode_audio_record(record: AudioRecord) -> bytes:
    return record.to_bytes()
