"""vLLM's `/v1/realtime` WebSocket protocol as typed events, parsed at the edge.

Both sides live here: the client (vllm_session.py) encodes client events and parses server
events; `transcribe serve` (serve.py) does the opposite. Unknown fields are ignored, as vLLM's
models allow them (future versions add fields such as `language`). Error codes and messages are
vLLM 0.33.0's, verified against a live server (docs: reference/vllm-realtime-protocol.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

# -- client -> server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    model: str
    # The call's language (Whisper/ISO 639-1 code), sent only when known: vLLM 0.33 ignores fields
    # it does not know; `transcribe serve` and servers with language control (the additive
    # session.update.language of reference/vllm-realtime-protocol.md) decode in it.
    language: str | None = None
    type: Literal["session.update"] = "session.update"


@dataclass(frozen=True, slots=True)
class AudioAppend:
    audio: str  # base64 of PCM16 LE mono 16 kHz
    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"

    @classmethod
    def of(cls, pcm16_16k: bytes) -> AudioAppend:
        return cls(base64.b64encode(pcm16_16k).decode("ascii"))


@dataclass(frozen=True, slots=True)
class Commit:
    final: bool = False  # False opens an utterance, True ends the running one
    type: Literal["input_audio_buffer.commit"] = "input_audio_buffer.commit"


ClientEvent = SessionUpdate | AudioAppend | Commit

# -- server -> client ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionCreated:
    id: str = field(default_factory=lambda: f"sess-{secrets.token_hex(8)}")
    created: int = field(default_factory=lambda: int(time.time()))
    type: Literal["session.created"] = "session.created"


@dataclass(frozen=True, slots=True)
class TranscriptionDelta:
    delta: str  # may be "" (control tokens)
    type: Literal["transcription.delta"] = "transcription.delta"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptionDone:
    text: str  # the concatenation of the utterance's deltas
    usage: Usage | None = None
    type: Literal["transcription.done"] = "transcription.done"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    error: str
    code: str | None = None
    type: Literal["error"] = "error"


ServerEvent = SessionCreated | TranscriptionDelta | TranscriptionDone | ErrorEvent

# vLLM's error codes and messages, word for word.
INVALID_JSON = ErrorEvent("Invalid JSON", "invalid_json")
MISSING_MODEL = ErrorEvent("Missing required field: model", "invalid_event")
MODEL_NOT_VALIDATED = ErrorEvent(
    "Model not validated. Make sure to validate the model by sending a session.update event.",
    "model_not_validated",
)
INVALID_AUDIO = ErrorEvent("Invalid audio data", "invalid_audio")


def unknown_event(event_type: object) -> ErrorEvent:
    return ErrorEvent(f"Unknown event type: {event_type}", "unknown_event")


def model_not_found(model: str) -> ErrorEvent:
    return ErrorEvent(f"The model `{model}` does not exist.", "model_not_found")


def processing_error(message: str) -> ErrorEvent:
    return ErrorEvent(message, "processing_error")


class ProtocolViolation(Exception):
    """A frame the peer should never send; `code` is safe to log."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def encode(event: ClientEvent | ServerEvent) -> str:
    """One event as the JSON text of one WebSocket frame."""
    match event:
        case TranscriptionDone(text=text, usage=usage):
            body: dict[str, Any] = {"type": event.type, "text": text, "usage": None}
            if usage is not None:
                body["usage"] = {
                    "prompt_tokens": usage.prompt_tokens,
                    "total_tokens": usage.total_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "prompt_tokens_details": None,
                    "completion_tokens_details": None,
                }
            return json.dumps(body)
        case SessionUpdate(model=model, language=language):
            body = {"type": event.type, "model": model}
            if language:
                body["language"] = language
            return json.dumps(body)
        case _:
            body = {"type": event.type}
            body.update({k: getattr(event, k) for k in event.__dataclass_fields__ if k != "type"})
            return json.dumps(body)


def _json_object(frame: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ProtocolViolation("invalid_json") from None
    if not isinstance(data, dict):
        raise ProtocolViolation("invalid_json")
    return data


def parse_server_event(frame: str | bytes) -> ServerEvent:
    """A server frame as a typed event; ProtocolViolation for anything else."""
    data = _json_object(frame)
    try:
        match data.get("type"):
            case "session.created":
                return SessionCreated(id=str(data.get("id", "")), created=int(data.get("created", 0)))
            case "transcription.delta":
                return TranscriptionDelta(_text(data["delta"]))
            case "transcription.done":
                raw = data.get("usage")
                usage = None
                if isinstance(raw, dict):
                    usage = Usage(
                        int(raw.get("prompt_tokens") or 0),
                        int(raw.get("completion_tokens") or 0),
                        int(raw.get("total_tokens") or 0),
                    )
                return TranscriptionDone(_text(data["text"]), usage)
            case "error":
                code = data.get("code")
                return ErrorEvent(str(data.get("error", "")), None if code is None else str(code))
    except (KeyError, TypeError, ValueError):
        raise ProtocolViolation("malformed_event") from None
    raise ProtocolViolation("unknown_event")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("text field is not a string")
    return value


@dataclass(frozen=True, slots=True)
class ParsedAppend:
    """An append whose audio decoded to PCM16 bytes (the server side of AudioAppend)."""

    pcm16: bytes
    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"


@dataclass(frozen=True, slots=True)
class ParsedUpdate:
    """A session.update; `model` None when the field was missing or null; `language` when given
    as a string (anything else there is ignored, as vLLM ignores fields it does not know)."""

    model: str | None
    language: str | None = None
    type: Literal["session.update"] = "session.update"


ParsedClientEvent = ParsedUpdate | ParsedAppend | Commit


class InputAudioBufferAppend(BaseModel):
    """vLLM's pydantic model: its validation text is what a bad append gets back."""

    model_config = ConfigDict(extra="allow")
    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"
    audio: str


class InputAudioBufferCommit(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["input_audio_buffer.commit"] = "input_audio_buffer.commit"
    final: bool = False


def parse_client_event(
    frame: str, *, model_validated: bool, max_audio_samples: int
) -> ParsedClientEvent | ErrorEvent:
    """A client frame as a typed event, or the ErrorEvent vLLM answers it with."""
    try:
        data = json.loads(frame)
    except json.JSONDecodeError:
        return INVALID_JSON
    if not isinstance(data, dict):
        return processing_error(f"'{type(data).__name__}' object has no attribute 'get'")
    try:
        match data.get("type"):
            case "session.update":
                model, language = data.get("model"), data.get("language")
                return ParsedUpdate(
                    None if model is None else str(model), language if isinstance(language, str) else None
                )
            case "input_audio_buffer.append":
                return _decode_audio(InputAudioBufferAppend(**data).audio, max_audio_samples)
            case "input_audio_buffer.commit":
                if not model_validated:  # checked before the fields, as vLLM does
                    return MODEL_NOT_VALIDATED
                return Commit(final=InputAudioBufferCommit(**data).final)
            case other:
                return unknown_event(other)
    except (ValidationError, TypeError) as exc:
        return processing_error(sanitize_message(str(exc)))


def _decode_audio(audio: str, max_audio_samples: int) -> ParsedAppend | ErrorEvent:
    # Like vLLM (pybase64, not validating): characters outside the alphabet are dropped.
    try:
        pcm = base64.b64decode(audio)
    except (binascii.Error, ValueError):
        return INVALID_AUDIO
    # vLLM: an odd byte count, empty audio and a clip over the size limit are all invalid_audio.
    if not pcm or len(pcm) % 2 or len(pcm) // 2 > max_audio_samples:
        return INVALID_AUDIO
    return ParsedAppend(pcm)


def sanitize_message(message: str) -> str:
    """vLLM's: strip memory addresses, tracebacks and file paths from an error message."""
    message = re.sub(r" at 0x[0-9a-fA-F]+>", ">", message)
    message = re.sub(r'\n?\s*File "[^"]+", line \d+, in \S+(\n\s+.*)?', "", message)
    message = re.sub(r"/(?:home|usr|opt|var|tmp|root|lib|mnt|srv)(?:/[\w.\-]+)+", "<path>", message)
    message = re.sub(r"(?:/[\w\-]+)+/[\w\-]+\.\w+", "<path>", message)
    return message.strip()
