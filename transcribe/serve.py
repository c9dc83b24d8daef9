"""`callscope transcribe serve`: the embedded CPU engine behind vLLM's `/v1/realtime` protocol.

A worker then uses one client (vllm_session.py) whether the model is vLLM on a GPU or Whisper
on CPU in another process. Same events, error codes and messages, and the same utterance
semantics as vLLM 0.33.0, pitfalls included where a client can observe them: session.created
first, no reply to session.update, a commit while an utterance runs is ignored, `final` is a
sentinel in the audio queue (a stray one ends the next utterance at once), the queue is cleared
after each done, a binary frame drops the connection, and an utterance ends by itself at
`max_utterance_s` (vLLM: max_model_len). Unlike vLLM, the audio queue is bounded: a full queue
stops reading the socket, which is TCP backpressure. Whisper re-decodes the open window every
`decode_interval_ms`; only text two decodes agree on goes out as deltas (agreement.py). A window
that reaches `window_ms` is cut at the quietest point of its last `cut_search_ms` (not at the
boundary); a cut inside speech re-decodes `cut_overlap_ms` in the next window and splits the
words of the overlap at its middle by word timestamps, so no word is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import logging
from dataclasses import dataclass

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from transcribe.agreement import LocalAgreement
from transcribe.language import normalise_language
from transcribe.realtime_protocol import (
    MISSING_MODEL,
    Commit,
    ErrorEvent,
    ParsedAppend,
    ParsedUpdate,
    SessionCreated,
    TranscriptionDelta,
    TranscriptionDone,
    Usage,
    encode,
    model_not_found,
    parse_client_event,
    processing_error,
)
from transcribe.segmenter import quietest_cut
from transcribe.whisper_engine import WhisperEngine

log = logging.getLogger(__name__)

RATE_HZ = 16_000
MAX_FRAME_BYTES = 16 * 1024 * 1024  # uvicorn's default, which bounds vLLM's messages too
_FINAL = None  # the end-of-audio sentinel, as in vLLM's queue


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    model_name: str = "callscope-whisper-tiny.en"  # what session.update must name
    api_key: str | None = None  # Bearer token required on /v1/realtime when set
    max_sessions: int = 4  # utterances transcribed at once (vLLM --max-num-seqs); others wait
    max_utterance_s: float = 3_600.0  # an utterance ends by itself here (vLLM: max_model_len)
    decode_interval_ms: int = 1_000  # audio between two decodes of the open window
    window_ms: int = 9_500  # Whisper decodes at most 10 s: longer utterances go window by window
    cut_search_ms: int = 3_000  # a full window is cut at the quietest point of its last seconds
    cut_overlap_ms: int = 1_000  # a cut inside speech: the next window starts this much before it
    max_queued_chunks: int = 256  # appends held per connection; the socket is not read beyond
    max_audio_samples: int = 25 * 1024 * 1024  # per append (vLLM: VLLM_MAX_AUDIO_CLIP_FILESIZE_MB)


class RealtimeServer:
    """Serves `/v1/realtime`, `/health` and `/ping`; use `async with` or `start()`/`close()`."""

    def __init__(self, engine: WhisperEngine, config: ServeConfig | None = None) -> None:
        self.engine = engine
        self.config = config or ServeConfig()
        self.slots = asyncio.Semaphore(self.config.max_sessions)
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=MAX_FRAME_BYTES,
            ping_interval=20,
            ping_timeout=20,
        )
        log.info("realtime server listening", extra={"port": self.port})

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> RealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in ("/health", "/ping"):
            return connection.respond(http.HTTPStatus.OK, "")
        if path != "/v1/realtime":
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        if self.config.api_key and request.headers.get("Authorization") != f"Bearer {self.config.api_key}":
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, '{"error":"Unauthorized"}')
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        await _Connection(self, ws).run()


class _Connection:
    """One WebSocket: vLLM's RealtimeConnection state machine."""

    def __init__(self, server: RealtimeServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.audio: asyncio.Queue[np.ndarray | None] = asyncio.Queue(server.config.max_queued_chunks)
        self.model_validated = False
        self.language: str | None = None  # from session.update; None: the engine's configured one
        self.generation: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await self.send(SessionCreated())
        try:
            while True:
                frame = await self.ws.recv()
                if isinstance(frame, bytes):
                    # vLLM reads text only: a binary frame ends the handler without a close frame.
                    log.info("binary frame, connection dropped")
                    self.ws.transport.abort()
                    return
                await self.on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            if self.generation is not None:
                self.generation.cancel()
                await asyncio.gather(self.generation, return_exceptions=True)

    async def on_frame(self, frame: str) -> None:
        config = self.server.config
        event = parse_client_event(
            frame, model_validated=self.model_validated, max_audio_samples=config.max_audio_samples
        )
        match event:
            case ErrorEvent():
                await self.send(event)
            case ParsedUpdate(model=None):
                await self.send(MISSING_MODEL)
            case ParsedUpdate(model=model, language=language):
                # vLLM: an empty name skips validation; no reply on success.
                if model and model != config.model_name:
                    await self.send(model_not_found(model))
                else:
                    self.model_validated = True
                    if language is not None:  # an unknown code keeps the one in use, as a field ignored
                        self.language = normalise_language(language) or self.language
            case ParsedAppend(pcm16=pcm):
                await self.audio.put(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)
            case Commit(final=True):
                await self.audio.put(_FINAL)
            case Commit(final=False):
                if self.generation is not None and not self.generation.done():
                    log.warning("commit ignored: an utterance is running")  # as vLLM: no error
                    return
                self.generation = asyncio.create_task(self.utterance(), name="serve-utterance")

    async def send(self, event: SessionCreated | TranscriptionDelta | TranscriptionDone | ErrorEvent) -> None:
        await self.ws.send(encode(event))

    async def utterance(self) -> None:
        try:
            async with self.server.slots:  # beyond max_sessions, the utterance waits here
                text, deltas = await self._transcribe()
            await self.send(TranscriptionDone(text, Usage(0, deltas, deltas)))
            while not self.audio.empty():  # as vLLM: audio queued after the end is dropped
                self.audio.get_nowait()
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("utterance failed")
            with contextlib.suppress(ConnectionClosed):
                await self.send(processing_error("Transcription failed."))

    async def _transcribe(self) -> tuple[str, int]:
        config = self.server.config
        interval = config.decode_interval_ms * RATE_HZ // 1000
        window_cap = config.window_ms * RATE_HZ // 1000
        limit = int(config.max_utterance_s * RATE_HZ)
        agreement = LocalAgreement()
        window: list[np.ndarray] = []
        window_samples = since_decode = total = 0
        skip_s = 0.0  # words of the window's first seconds belong to the previous window
        text, deltas = "", 0
        while True:
            chunk = await self.audio.get()
            if chunk is _FINAL:
                break
            chunk = chunk[: limit - total]
            window.append(chunk)
            window_samples += len(chunk)
            since_decode += len(chunk)
            total += len(chunk)
            if window_samples >= window_cap:  # close this window at a quiet point, go on in the next
                samples = np.concatenate(window)
                cut, pause = quietest_cut(samples, config.cut_search_ms * RATE_HZ // 1000)
                overlap = 0 if pause else config.cut_overlap_ms * RATE_HZ // 1000
                until_s = (cut - overlap / 2) / RATE_HZ if overlap else None
                closing = await self._decode([samples[:cut]], skip_s, until_s)
                for delta in agreement.finish(closing):
                    text, deltas = text + delta, deltas + 1
                    await self.send(TranscriptionDelta(delta))
                carry = samples[cut - overlap :]
                window, window_samples, since_decode = [carry], len(carry), 0
                skip_s = overlap / 2 / RATE_HZ
            elif since_decode >= interval:
                since_decode = 0
                stable = agreement.update(await self._decode(window, skip_s))
                for delta in stable or [""]:  # an empty delta says the engine is alive, as vLLM's pads
                    text, deltas = text + delta, deltas + 1
                    await self.send(TranscriptionDelta(delta))
            if total >= limit:
                log.info("utterance reached max_utterance_s")
                break
        if window_samples:
            for delta in agreement.finish(await self._decode(window, skip_s)):
                text, deltas = text + delta, deltas + 1
                await self.send(TranscriptionDelta(delta))
        return text, deltas

    async def _decode(
        self, window: list[np.ndarray], skip_s: float = 0.0, until_s: float | None = None
    ) -> str:
        """The window's text; with bounds, only the words whose middle lies in [skip_s, until_s)."""
        samples = np.concatenate(window) if window else np.zeros(0, dtype=np.float32)
        options = {"language": self.language} if self.language else {}
        if not skip_s and until_s is None:
            return (
                await asyncio.to_thread(functools.partial(self.server.engine.decode, samples, **options))
            ).text
        decode = functools.partial(self.server.engine.decode, samples, words=True, **options)
        result = await asyncio.to_thread(decode)
        return result.keep_words(skip_s or None, until_s).text


async def run_server(
    config: ServeConfig, *, stop: asyncio.Event, engine: WhisperEngine | None = None
) -> None:
    """Serve until `stop` is set; `callscope transcribe serve` calls this."""
    if engine is None:
        from transcribe.whisper_engine import shared_engine

        engine = await asyncio.to_thread(shared_engine)
    async with RealtimeServer(engine, config):
        await stop.wait()
