"""Turns of the embedded engine on real phone speech: first words kept, onsets placed, nothing
invented out of tones or noise, long turns cut at pauses with no word lost or doubled."""

from __future__ import annotations

import asyncio

import jiwer
import numpy as np
import pytest

from bench.fidelity import speech_onset, through_phone
from bench.scoring import canonical
from tests.speech import asterisk_available, asterisk_prompts, normalise_text
from tests.transcribe.test_whisper_engine import NOT_SPEECH
from transcribe.local_session import LocalSession, LocalSessionConfig
from transcribe.segmenter import SegmenterConfig
from transcribe.session import FinalText, PartialText

R = 16_000
pytestmark = pytest.mark.skipif(not asterisk_available(), reason="Asterisk prompts not installed")


async def stream(engine, audio: np.ndarray, config: LocalSessionConfig | None = None) -> list:
    """int16 16 kHz through a LocalSession in 20 ms frames, letting decoding catch up every 250 ms."""
    pcm = audio.astype("<i2").tobytes()
    events: list = []
    async with LocalSession(engine, config) as session:

        async def collect() -> None:
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(collect(), name="test-collect")
        for i in range(0, len(pcm), 640):
            await session.send_audio(pcm[i : i + 640])
            if i % 8_000 == 0:
                await session.wait_idle()
        await session.end_input()
        await reader
    return events


def phone(name: str) -> tuple[str, np.ndarray]:
    utt = next(u for u in asterisk_prompts(2.0, 30.0) if u.name == name)
    return utt.text, through_phone(utt)


def whole_utterance(engine, audio: np.ndarray) -> str:
    """faster-whisper's own 30 s transcribe of the same model: the batch reference."""
    segments, _ = engine._model.transcribe(
        audio.astype(np.float32) / 32768, language="en", beam_size=1, condition_on_previous_text=False
    )
    return normalise_text(" ".join(s.text for s in segments))


FIRST_WORDS = ["agent-pass", "demo-moreinfo", "conf-enteringno", "dir-nomore", "conf-getpin", "dir-first"]


async def test_the_first_word_of_every_turn_survives_and_the_turn_starts_at_the_speech(whisper_engine):
    """Prompts back to back 0.7 s apart (the pre-roll would reach into the previous turn) and one
    at the very first sample of the leg; demo-moreinfo starts with "Asterisk", which Silero scores
    0.1 for its first 300 ms."""
    prompts = [phone(n) for n in FIRST_WORDS]
    gap = np.zeros(int(0.7 * R), np.int16)
    first_text, first_audio = prompts[0]
    first_audio = first_audio[speech_onset(first_audio) :]  # speech from the leg's first sample
    parts, onsets, pos = [first_audio, gap], [0], len(first_audio) + len(gap)
    for _, audio in prompts[1:]:
        onsets.append(pos + speech_onset(audio))
        parts += [audio, gap]
        pos += len(audio) + len(gap)
    events = await stream(whisper_engine, np.concatenate(parts))
    finals = [e for e in events if isinstance(e, FinalText) and e.text.strip()]
    for (text, _), onset in zip(prompts, onsets, strict=True):
        onset_ms = onset * 1000 // R
        first = min((f for f in finals if f.end_ms > onset_ms), key=lambda f: abs(f.start_ms - onset_ms))
        assert abs(first.start_ms - onset_ms) <= 150, (text, first)
        assert normalise_text(first.text).split()[0] == text.split()[0], (text, first.text)


async def test_tones_noise_and_dtmf_on_a_leg_give_no_words(whisper_engine):
    pause = np.zeros(R // 2, np.float32)
    audio = np.concatenate([x for make in NOT_SPEECH.values() for x in (make(), pause)])
    events = await stream(whisper_engine, np.clip(audio * 32768, -32768, 32767).astype(np.int16))
    texts = [e.text for e in events if isinstance(e, FinalText | PartialText) and e.text.strip()]
    assert texts == []


LONG = ["demo-echotest", "basic-pbx-ivr-main"]  # prompts of 17 and 25 s


async def test_a_long_turns_final_is_one_decode_that_keeps_the_words_across_the_old_cut(whisper_engine):
    """Turns beyond the 10 s window are decoded whole (Whisper's 30 s window) for their final:
    as accurate as the batch reference, where the 9.5 s cut used to lose or invent words."""
    prompts = [phone(name) for name in LONG]
    pause = np.zeros(R, np.int16)
    events = await stream(whisper_engine, np.concatenate([pause, prompts[0][1], pause, prompts[1][1], pause]))
    finals = [e for e in events if isinstance(e, FinalText) and e.text.strip()]
    assert len(finals) == 2  # one final a prompt: no cut
    reference = " ".join(canonical(text) for text, _ in prompts)
    streamed = " ".join(canonical(normalise_text(f.text)) for f in finals)
    whole = " ".join(canonical(whole_utterance(whisper_engine, audio)) for _, audio in prompts)
    print(f"\nREF   {reference}\nFINAL {streamed}\nWHOLE {whole}")
    # 84 words: the whole-utterance decode's errors and at most 4 more (edge effects of the turn's
    # own start and end: tiny.en moves a word or two when they shift by 0.1 s).
    assert jiwer.wer(reference, streamed) <= jiwer.wer(reference, whole) + 0.05
    # A long turn's partials come all along it, decoding its last 9.5 s after the text before.
    long_partials = [e for e in events if isinstance(e, PartialText) and e.start_ms == finals[1].start_ms]
    assert len(long_partials) >= 15
    assert normalise_text(long_partials[-1].text).split()[:3] == normalise_text(finals[1].text).split()[:3]


async def test_long_turns_are_cut_at_pauses_and_no_word_is_lost_or_doubled(whisper_engine):
    """Prompts of 17 and 25 s, as one leg, with turns cut at 9.5 s: how a turn longer than the
    engine's 30 s window (max_turn_ms, 28 s) is cut."""
    prompts = [phone(name) for name in LONG]
    pause = np.zeros(R, np.int16)
    config = LocalSessionConfig(segmenter=SegmenterConfig(max_turn_ms=9_500))
    audio = np.concatenate([pause, prompts[0][1], pause, prompts[1][1], pause])
    events = await stream(whisper_engine, audio, config)
    finals = [e for e in events if isinstance(e, FinalText) and e.text.strip()]
    assert len(finals) >= 4  # each prompt cut at least once
    for a, b in zip(finals, finals[1:], strict=False):
        assert b.start_ms >= a.end_ms  # turns follow one another, never overlap in the transcript
        tail, head = normalise_text(a.text).split()[-2:], normalise_text(b.text).split()[:2]
        assert tail != head, (a.text, b.text)  # no phrase doubled across a cut
    reference = " ".join(text for text, _ in prompts)
    hypothesis = " ".join(normalise_text(f.text) for f in finals)
    wer = jiwer.wer(reference, hypothesis)
    print(f"\nlong turns WER {wer:.3f}\nREF {reference}\nHYP {hypothesis}")
    assert wer <= 0.12


def test_quietest_cut_picks_the_pause_of_the_last_seconds_and_says_when_there_is_none():
    from transcribe.segmenter import quietest_cut

    rng = np.random.default_rng(1)
    speech = rng.standard_normal(10 * R).astype(np.float32) * 0.1
    speech[int(8.2 * R) : int(8.4 * R)] *= 0.001  # a pause 1.8 s before the end
    speech[int(2.0 * R) : int(2.5 * R)] = 0  # quieter, but outside the last 3 s
    cut, pause = quietest_cut(speech, 3 * R)
    assert int(8.2 * R) <= cut <= int(8.4 * R) and pause
    cut, pause = quietest_cut(rng.standard_normal(10 * R).astype(np.float32) * 0.1, 3 * R)
    assert 7 * R <= cut <= 10 * R and not pause


class _Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)


async def test_serve_cuts_a_long_utterance_at_pauses_without_losing_or_doubling_words(whisper_engine):
    """`transcribe serve`: one 25 s utterance, cut window by window, as the deltas a client gets."""
    import json

    from transcribe.serve import _FINAL, RealtimeServer, ServeConfig, _Connection

    text, audio = phone("basic-pbx-ivr-main")
    server = RealtimeServer(whisper_engine, ServeConfig(decode_interval_ms=60_000))  # finals only
    connection = _Connection(server, _Socket())  # type: ignore[arg-type]
    connection.audio = asyncio.Queue()  # unbounded here: the whole utterance is queued at once
    for i in range(0, len(audio), 3_200):
        connection.audio.put_nowait(audio[i : i + 3_200].astype(np.float32) / 32768)
    connection.audio.put_nowait(_FINAL)
    said, _ = await connection._transcribe()
    wer = jiwer.wer(text, normalise_text(said))
    batch = jiwer.wer(text, whole_utterance(whisper_engine, audio))
    print(f"\nserve WER {wer:.3f} (whole: {batch:.3f})\nREF {text}\nHYP {normalise_text(said)}")
    assert wer <= batch + 0.05  # "press 1" for "press one" counts in both
    assert all(json.loads(m)["type"] == "transcription.delta" for m in connection.ws.sent)
