"""The engine seam: one streaming speech session per call leg, whatever engine is behind it.

Positions are milliseconds since the first sample sent to the session (leg audio-time as the
session saw it); the worker maps them to leg positions, capture times and segment ids.
Audio in is always PCM16 little-endian, mono, 16 kHz: what vLLM's realtime API takes too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self

from ingest.events import Leg


@dataclass(frozen=True, slots=True)
class PartialText:
    """Best guess so far for the open turn; a later revision of the same start replaces it."""

    start_ms: int
    end_ms: int
    text: str
    revision: int
    kind: Literal["partial"] = "partial"


@dataclass(frozen=True, slots=True)
class FinalText:
    """The settled text of one turn."""

    start_ms: int
    end_ms: int
    text: str
    confidence: float | None = None
    kind: Literal["final"] = "final"


@dataclass(frozen=True, slots=True)
class SessionError:
    """The session hit a problem; `retryable` says whether a new session may succeed."""

    code: str
    retryable: bool
    kind: Literal["error"] = "error"


SessionEvent = PartialText | FinalText | SessionError


class SpeechError(Exception):
    """Base of the engine errors; `code` is a short fixed string safe to log and publish."""

    code = "speech_error"
    retryable = False


class EngineUnavailable(SpeechError):
    code = "engine_unavailable"
    retryable = True


class EngineFailure(SpeechError):
    code = "engine_failure"
    retryable = True


class InvalidAudio(SpeechError):
    code = "invalid_audio"
    retryable = False


class SessionClosed(SpeechError):
    code = "session_closed"
    retryable = False


class SpeechSession(Protocol):
    """A streaming recognizer for one mono audio stream (livekit RecognizeStream style).

    `send_audio` waits while the session's input buffer is full: that is the backpressure.
    `events()` ends after `end_input()` once every final is out, or after `aclose()`.
    """

    async def send_audio(self, pcm16_16k: bytes) -> None: ...

    async def end_input(self) -> None: ...

    def events(self) -> AsyncIterator[SessionEvent]: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class SessionFactory(Protocol):
    """Opens a new (not yet entered) session for one call leg."""

    def __call__(self, *, call_id: str, leg: Leg, language: str | None = None) -> SpeechSession: ...
