"""LocalSession against a scripted scheduler: early finals, ordering and supersession, no model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from transcribe.local_session import LocalSession, LocalSessionConfig
from transcribe.session import FinalText, PartialText
from transcribe.whisper_engine import Transcription

WINDOW = 512


class LoudnessVad:
    """Fake VAD: a 512-sample window is speech when it is not silent."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def pending_samples(self) -> int:
        return len(self._pending)

    def process(self, samples: np.ndarray) -> list[float]:
        audio = np.concatenate([self._pending, samples])
        complete = len(audio) // WINDOW * WINDOW
        self._pending = audio[complete:]
        return [0.9 if np.any(audio[i : i + WINDOW]) else 0.0 for i in range(0, complete, WINDOW)]


class ScriptedScheduler:
    """Fake DecodeScheduler: the test resolves each submitted clip's future by hand."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, int, asyncio.Future[Transcription | None]]] = []
        self.promoted = 0
        self.options: list[dict[str, Any]] = []

    def new_session_id(self) -> int:
        return 1

    def submit(
        self, session: int, kind: str, audio: np.ndarray, **options: Any
    ) -> asyncio.Future[Transcription | None]:
        future: asyncio.Future[Transcription | None] = asyncio.get_running_loop().create_future()
        for _, _, waiting in self.submitted:
            if kind == "final" and not waiting.done():
                waiting.set_result(None)  # a final supersedes the session's waiting partial
        self.submitted.append((kind, len(audio), future))
        self.options.append(options)
        return future

    def promote(self, session: int) -> None:
        self.promoted += 1

    def forget(self, session: int) -> None:
        pass


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(1_000):  # yields to the session's tasks, never a timed sleep
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def _speech(ms: int) -> bytes:
    return np.full(ms * 16, 1_000, dtype="<i2").tobytes()


def _silence(ms: int) -> bytes:
    return np.zeros(ms * 16, dtype="<i2").tobytes()


async def _open_with(scheduler: ScriptedScheduler, config: LocalSessionConfig) -> tuple[LocalSession, list]:
    session = LocalSession(None, config, vad=LoudnessVad(), scheduler=scheduler)  # type: ignore[arg-type]
    await session.__aenter__()
    return session, []


async def _open(scheduler: ScriptedScheduler) -> tuple[LocalSession, list]:
    # No thread hops; turns here are shorter than a first partial, so only early decodes are submitted.
    config = LocalSessionConfig(
        max_batch_samples=WINDOW,
        inline_vad_samples=1 << 30,
        first_partial_ms=1_000,
        untexted_interval_ms=1_000,
    )
    session = LocalSession(None, config, vad=LoudnessVad(), scheduler=scheduler)  # type: ignore[arg-type]
    await session.__aenter__()
    return session, []


async def _send(session: LocalSession, pcm: bytes) -> None:
    for i in range(0, len(pcm), 2 * WINDOW):
        await session.send_audio(pcm[i : i + 2 * WINDOW])


async def _drain(session: LocalSession, events: list) -> None:
    await session.end_input()
    events += [e async for e in session.events()]


async def test_an_early_decode_still_running_at_the_turn_end_becomes_the_final_without_a_second_decode():
    scheduler = ScriptedScheduler()
    session, events = await _open(scheduler)
    await _send(session, _silence(200) + _speech(600) + _silence(300))  # past post-roll: early decode
    await _until(lambda: len(scheduler.submitted) == 1)
    kind, _, early = scheduler.submitted[0]
    assert kind == "partial"
    await _send(session, _silence(500))  # past max silence: the segmenter ends the turn
    await _until(lambda: scheduler.promoted == 1)
    early.set_result(Transcription("hello there", 0.9))
    await _drain(session, events)
    assert [type(e) for e in events] == [FinalText]
    assert events[0].text == "hello there"
    assert [k for k, _, _ in scheduler.submitted] == ["partial"]


async def test_an_early_decode_done_before_the_turn_end_is_a_partial_then_the_final():
    scheduler = ScriptedScheduler()
    session, events = await _open(scheduler)
    await _send(session, _silence(200) + _speech(600) + _silence(300))
    await _until(lambda: len(scheduler.submitted) == 1)
    scheduler.submitted[0][2].set_result(Transcription("hello there", 0.9))
    await session.wait_idle()  # the partial is out
    await _send(session, _silence(500))
    await _drain(session, events)
    assert [(type(e), e.text) for e in events] == [(PartialText, "hello there"), (FinalText, "hello there")]
    assert len(scheduler.submitted) == 1


async def test_speech_resuming_after_a_pause_decodes_the_whole_turn_as_the_final():
    scheduler = ScriptedScheduler()
    session, events = await _open(scheduler)
    await _send(session, _silence(200) + _speech(600) + _silence(300) + _speech(600))
    await _until(lambda: len(scheduler.submitted) == 1)
    scheduler.submitted[0][2].set_result(Transcription("hello", 0.9))
    await session.wait_idle()
    await _send(session, _silence(300))  # a second early decode, for the whole turn
    await _until(lambda: len(scheduler.submitted) == 2)
    scheduler.submitted[1][2].set_result(Transcription("hello there", 0.9))
    await _send(session, _silence(500))
    await _drain(session, events)
    assert [e.text for e in events if isinstance(e, FinalText)] == ["hello there"]
    assert [e.text for e in events if isinstance(e, PartialText)] == ["hello"]  # the second became the final
    assert scheduler.submitted[1][1] > scheduler.submitted[0][1]


async def test_a_turn_asks_for_its_first_partial_first_partial_ms_after_its_speech_starts():
    scheduler = ScriptedScheduler()
    config = LocalSessionConfig(max_batch_samples=WINDOW, inline_vad_samples=1 << 30)
    first = config.first_partial_ms
    session, _ = await _open_with(scheduler, config)
    try:
        await _send(session, _silence(400) + _speech(first - 100))
        await session.wait_idle()
        assert scheduler.submitted == []  # too early
        await _send(session, _speech(200))
        await _until(lambda: len(scheduler.submitted) == 1)
        kind, samples, _ = scheduler.submitted[0]
        assert kind == "partial"
        assert scheduler.options[0]["urgent"] is True  # the turn has no text yet: ahead of revisions
        # The clip: pre-roll (up to 200 ms), then first_partial_ms of speech from the onset.
        assert first * 16 <= samples <= (200 + first + 64) * 16
    finally:
        await session.aclose()


async def test_a_turn_without_text_asks_again_soon_and_one_with_text_once_a_second():
    scheduler = ScriptedScheduler()
    config = LocalSessionConfig(max_batch_samples=WINDOW, inline_vad_samples=1 << 30)
    session, _ = await _open_with(scheduler, config)
    try:
        await _send(session, _silence(400) + _speech(config.first_partial_ms + 100))
        await _until(lambda: len(scheduler.submitted) == 1)
        scheduler.submitted[0][2].set_result(Transcription("", None))  # no whole word yet
        await session.wait_idle()
        await _send(session, _speech(config.untexted_interval_ms))
        await _until(lambda: len(scheduler.submitted) == 2)  # asked again after untexted_interval_ms
        assert scheduler.options[1]["urgent"] is True
        scheduler.submitted[1][2].set_result(Transcription("hello", 0.9))
        await session.wait_idle()
        await _send(session, _speech(config.partial_interval_ms - 100))
        await session.wait_idle()
        assert len(scheduler.submitted) == 2  # the turn shows text: the next one after a second
        await _send(session, _speech(200))
        await _until(lambda: len(scheduler.submitted) == 3)
        assert "urgent" not in scheduler.options[2]
    finally:
        await session.aclose()


async def test_a_waiting_partial_grows_to_the_audio_seen_when_its_decode_starts():
    scheduler = ScriptedScheduler()
    config = LocalSessionConfig(max_batch_samples=WINDOW, inline_vad_samples=1 << 30)
    session, events = await _open_with(scheduler, config)

    async def collect() -> None:
        async for event in session.events():
            events.append(event)

    reader = asyncio.create_task(collect(), name="test-collect")
    await _send(session, _silence(400) + _speech(config.first_partial_ms + 50))
    await _until(lambda: len(scheduler.submitted) == 1)
    _, samples, future = scheduler.submitted[0]
    await _send(session, _speech(120))  # arrives while the partial waits for the decoder
    await _until(lambda: session._input.empty() and session._busy == 0)
    clip = scheduler.options[0]["extend"](np.zeros(samples, dtype=np.float32))  # the decode starts
    turn_start = session._segmenter.turn_start
    assert len(clip) >= samples + 120 * 16 - WINDOW  # the later audio, as far as the VAD has seen it
    assert turn_start + len(clip) == session._segmenter.position
    future.set_result(Transcription("hello", 0.9))
    await _until(lambda: bool(events))
    assert isinstance(events[0], PartialText)
    assert events[0].end_ms * 16 == turn_start + len(clip)  # its end: the grown clip's end
    await session.end_input()
    await _settle(session, scheduler, lambda n: Transcription("hello", 0.9))
    await reader


async def test_a_15_s_turn_gets_one_final_decoded_over_the_whole_turn_and_partials_of_its_last_10_s():
    scheduler = ScriptedScheduler()
    config = LocalSessionConfig(max_batch_samples=WINDOW, inline_vad_samples=1 << 30)
    session, events = await _open_with(scheduler, config)

    def decode(n: int) -> Transcription:
        return Transcription("the whole turn" if n > 15 * 16_000 else "tail", 0.9)

    await _send(session, _silence(200))
    for _ in range(15):  # decoded as they come, a second of speech at a time
        await _send(session, _speech(1_000))
        await _settle(session, scheduler, decode)
    await _send(session, _silence(1_100))  # the segmenter ends the turn
    await _until(lambda: any(kind == "final" for kind, _, _ in scheduler.submitted))
    await _settle(session, scheduler, decode)
    await _drain(session, events)
    finals = [e for e in events if isinstance(e, FinalText)]
    assert [f.text for f in finals] == ["the whole turn"]  # one final: no cut at 9.5 s
    assert finals[0].end_ms - finals[0].start_ms >= 15_000
    # Decoded once over the whole turn, at its end: no early decode of a turn past 10 s at a
    # pause (each would cost a 30 s-window decode).
    assert [(kind, n > 15 * 16_000) for kind, n, _ in scheduler.submitted if n > 10 * 16_000] == [
        ("final", True)
    ]
    partials = [n for kind, n, _ in scheduler.submitted if kind == "partial"]
    assert len(partials) >= 14  # one a second all along the turn
    assert max(partials) <= config.partial_window_ms * 16  # partials decode the turn's last 9.5 s


async def test_a_long_turns_partials_keep_the_text_of_segments_before_their_window():
    from transcribe.whisper_engine import Segment

    scheduler = ScriptedScheduler()
    config = LocalSessionConfig(max_batch_samples=WINDOW, inline_vad_samples=1 << 30, early_final=False)
    session, events = await _open_with(scheduler, config)

    async def collect() -> None:
        async for event in session.events():
            events.append(event)

    reader = asyncio.create_task(collect(), name="test-collect")
    await _send(session, _silence(200) + _speech(9_000))
    # The partials so far (the turn's first ~9 s) said two sentences, the first ending at 4 s.
    await _settle(
        session,
        scheduler,
        lambda n: Transcription(
            "first sentence. second",
            0.9,
            (Segment(0.0, 4.0, "first sentence."), Segment(4.0, n / 16_000, "second")),
        ),
    )
    submitted = len(scheduler.submitted)
    await _send(session, _speech(2_500))  # the turn passes 9.5 s: partials decode from 4 s on
    await _settle(session, scheduler, lambda n: Transcription("second sentence", 0.9))
    assert len(scheduler.submitted) >= submitted + 2
    assert all(n <= config.partial_window_ms * 16 for _, n, _ in scheduler.submitted[submitted:])
    partials = [e for e in events if isinstance(e, PartialText)]
    assert partials[-1].text == "first sentence. second sentence"
    assert partials[-1].start_ms == partials[0].start_ms  # the same turn, from its onset
    await session.end_input()
    await _settle(session, scheduler, lambda n: Transcription("first sentence. second sentence", 0.9))
    await reader
    assert [e.text for e in events if isinstance(e, FinalText)] == ["first sentence. second sentence"]


async def _settle(
    session: LocalSession, scheduler: ScriptedScheduler, make: Callable[[int], Transcription]
) -> None:
    """Resolve every decode as submitted (`make(clip samples)`) until the audio sent is processed."""
    for _ in range(10_000):  # yields to the session's tasks, never a timed sleep
        for _, n, future in scheduler.submitted:
            if not future.done():
                future.set_result(make(n))
        if session._input.empty() and session._busy == 0 and all(f.done() for _, _, f in scheduler.submitted):
            await session.wait_idle()
            return
        await asyncio.sleep(0)
    raise AssertionError("session did not settle")
