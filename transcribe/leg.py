"""One call leg's speech session, fed with the leg's frames, turned into transcript events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from ingest.events import AudioFrame, Leg
from transcribe import metrics
from transcribe.codec import LegDecoder, samples_at_16k
from transcribe.events import FinalSegment, LegError, PartialSegment, StageTimes, TranscriptEvent, segment_id
from transcribe.session import FinalText, PartialText, SessionError, SpeechError, SpeechSession
from transcribe.timeline import RATE_HZ, LegTimeline

log = logging.getLogger(__name__)

Emit = Callable[[TranscriptEvent], Awaitable[None]]
_GAP_CHUNK_SAMPLES = RATE_HZ  # silence for gaps is sent in 1 s pieces, like any other audio
# Audio captured this long before the leg's first frame reached this worker was on the broker
# already: a worker that took the call over (or restarted) re-reads it from the last commit, and
# what it emits for it is a re-send, not a latency (a healthy worker reads within milliseconds).
RESENT_MARGIN_S = 2.0
_sessions_per_call: Counter[str] = Counter()  # open sessions per call, for the active-calls gauge


class LegStream:
    """Feeds one session from `base_position` (16 kHz samples into the leg) onwards.

    `run()` owns the session: it enters it, forwards its events until they end, and closes it.
    """

    def __init__(
        self,
        *,
        call_id: str,
        leg: Leg,
        session: SpeechSession,
        decoder: LegDecoder,
        base_position: int,
        emit: Emit,
        max_gap_samples: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.call_id = call_id
        self.leg = leg
        self.base_position = base_position
        self.ended = False
        self.last_audio_at = time.monotonic()
        self._session = session
        self._decoder = decoder
        self._timeline = LegTimeline(base_position)
        self._emit = emit
        self._max_gap_samples = max_gap_samples
        self._clock = clock
        self._ready = asyncio.Event()
        self._opened_at: float | None = None  # when this worker received the leg's first frame
        self.error: SessionError | None = None  # the session's last error, if it reported one

    @classmethod
    def from_frame(
        cls, frame: AudioFrame, *, session: SpeechSession, emit: Emit, max_gap_samples: int
    ) -> LegStream:
        """A stream for `frame`'s leg that starts at `frame`, decoding the leg's codec."""
        return cls(
            call_id=frame.call_id,
            leg=frame.leg,
            session=session,
            decoder=LegDecoder(frame.codec, frame.sample_rate_hz),
            base_position=samples_at_16k(frame.offset_samples, frame.sample_rate_hz),
            emit=emit,
            max_gap_samples=max_gap_samples,
        )

    def accepts(self, frame: AudioFrame) -> bool:
        """False when the frame lies too far past the audio sent (a new session must take it)."""
        position = samples_at_16k(frame.offset_samples, frame.sample_rate_hz)
        return position - self._timeline.next_position <= self._max_gap_samples

    async def feed(self, frame: AudioFrame, received_at: float) -> None:
        await self._ready.wait()
        self.last_audio_at = time.monotonic()
        if self._opened_at is None:
            self._opened_at = received_at
        samples = self._decoder.decode(frame.payload)
        position = samples_at_16k(frame.offset_samples, frame.sample_rate_hz)
        placement = self._timeline.place(position, len(samples))
        for start in range(0, placement.pad_samples, _GAP_CHUNK_SAMPLES):
            size = min(_GAP_CHUNK_SAMPLES, placement.pad_samples - start)
            await self._session.send_audio(bytes(2 * size))
        fresh = samples[placement.skip_samples :]
        if len(fresh):
            await self._session.send_audio(fresh.astype("<i2").tobytes())
        self._timeline.advance(position, len(samples), frame.captured_at, received_at)

    async def end_input(self) -> None:
        if not self.ended:
            self.ended = True
            await self._ready.wait()
            await self._session.end_input()

    async def fail(self, code: str, *, retryable: bool) -> None:
        """Give up on this session (it stopped taking audio): report the leg, close the session."""
        self.ended = True
        self.error = SessionError(code, retryable)
        await self._emit(self._to_transcript(self.error))
        await self._session.aclose()  # its events() ends, so run() returns

    async def run(self) -> None:
        metrics.SESSIONS_OPEN.inc()
        _sessions_per_call[self.call_id] += 1
        metrics.CALLS_ACTIVE.set(len(_sessions_per_call))
        try:
            async with self._session:
                self._ready.set()
                async for event in self._session.events():
                    if isinstance(event, SessionError):
                        self.error = event
                    await self._emit(self._to_transcript(event))
        except SpeechError as exc:
            self.error = SessionError(exc.code, exc.retryable)
            await self._emit(self._to_transcript(self.error))
        finally:
            self.ended = True
            self._ready.set()  # feeders waiting on a session that failed to open must not hang
            metrics.SESSIONS_OPEN.dec()
            _sessions_per_call[self.call_id] -= 1
            if _sessions_per_call[self.call_id] <= 0:
                del _sessions_per_call[self.call_id]
            metrics.CALLS_ACTIVE.set(len(_sessions_per_call))

    def _to_transcript(self, event: PartialText | FinalText | SessionError) -> TranscriptEvent:
        now = self._clock()
        if isinstance(event, SessionError):
            metrics.LEG_ERRORS.labels(event.code).inc()
            log.warning(
                "speech session error", extra={"call_id": self.call_id, "leg": self.leg, "code": event.code}
            )
            return LegError(
                call_id=self.call_id, leg=self.leg, code=event.code, retryable=event.retryable, at=now
            )
        start = self.base_position + event.start_ms * RATE_HZ // 1000
        end = self.base_position + event.end_ms * RATE_HZ // 1000
        start_ms, end_ms = _ms(start), _ms(end)
        captured_at, received_at = self._timeline.times_at(max(start, end - 1))
        common = dict(
            call_id=self.call_id,
            leg=self.leg,
            segment_id=segment_id(self.call_id, self.leg, start_ms),
            start_ms=start_ms,
            end_ms=end_ms,
            text=event.text,
        )
        resent = self._opened_at is not None and captured_at < self._opened_at - RESENT_MARGIN_S
        if isinstance(event, PartialText):
            if resent:
                metrics.SEGMENTS_RESENT.labels("partial").inc()
            else:
                metrics.PARTIAL_LATENCY.observe(max(0.0, now - captured_at))
                if event.revision == 0:
                    speech_started_at = self._timeline.times_at(start)[0]
                    metrics.FIRST_PARTIAL_LATENCY.observe(max(0.0, now - speech_started_at))
            times = StageTimes(audio_captured_at=captured_at, audio_received_at=received_at, emitted_at=now)
            return PartialSegment(**common, times=times, revision=event.revision)
        if resent:
            metrics.SEGMENTS_RESENT.labels("final").inc()
        else:
            metrics.FINAL_LATENCY.observe(max(0.0, now - captured_at))
        times = StageTimes(
            audio_captured_at=captured_at,
            audio_received_at=received_at,
            emitted_at=now,
            speech_ended_at=captured_at,
        )
        return FinalSegment(**common, times=times, confidence=event.confidence)


def _ms(samples: int) -> int:
    return samples * 1000 // RATE_HZ
