"""The embedded engine (Silero VAD + segmenter + Whisper tiny.en) on real human speech."""

from __future__ import annotations

import asyncio
import time

import jiwer
import numpy as np
import pytest

from ingest.events import Codec
from tests.speech import asterisk_available, asterisk_prompts, librivox_utterances, normalise_text
from transcribe.codec import LegDecoder, encode_mulaw
from transcribe.local_session import LocalSession
from transcribe.session import FinalText, PartialText

PAUSE_S = 1.2


def _with_pauses(utterances, rate_hz: int) -> tuple[np.ndarray, list[int]]:
    """Utterances separated by silence; returns samples and where each utterance starts (ms)."""
    pause = np.zeros(int(PAUSE_S * rate_hz), dtype=np.int16)
    parts, starts_ms, pos = [pause], [], len(pause)
    for utt in utterances:
        starts_ms.append(pos * 1000 // rate_hz)
        parts += [utt.samples, pause]
        pos += len(utt.samples) + len(pause)
    return np.concatenate(parts), starts_ms


async def _transcribe(whisper_engine, pcm16_16k: bytes, *, paced: bool = False) -> list:
    events = []
    async with LocalSession(whisper_engine) as session:

        async def collect():
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(collect(), name="test-collect")
        for i in range(0, len(pcm16_16k), 640):  # 20 ms frames
            await session.send_audio(pcm16_16k[i : i + 640])
            if paced and i % 8_000 == 0:  # every 250 ms of audio, let decoding catch up
                await session.wait_idle()
        await session.end_input()
        await reader
    return events


def _check_finals(events, utterances, starts_ms) -> float:
    finals = [e for e in events if isinstance(e, FinalText)]
    assert len(finals) == len(utterances)
    for final, start_ms in zip(finals, starts_ms, strict=True):
        assert abs(final.start_ms - start_ms) <= 500
        assert final.end_ms > final.start_ms
    reference = " ".join(u.text for u in utterances)
    return jiwer.wer(reference, " ".join(normalise_text(f.text) for f in finals))


async def test_librivox_speech_is_transcribed_with_low_wer_and_right_positions(whisper_engine):
    utterances = librivox_utterances()
    samples, starts_ms = _with_pauses(utterances, 16_000)
    started = time.perf_counter()
    events = await _transcribe(whisper_engine, samples.astype("<i2").tobytes())
    elapsed = time.perf_counter() - started
    wer = _check_finals(events, utterances, starts_ms)
    print(f"librivox WER {wer:.3f}, {len(samples) / 16_000:.1f} s of audio in {elapsed:.2f} s")
    assert wer <= 0.15


@pytest.mark.skipif(not asterisk_available(), reason="Asterisk prompts not installed")
async def test_phone_prompts_through_mulaw_8k_are_transcribed_with_low_wer(whisper_engine):
    utterances = asterisk_prompts()[:8]
    samples, starts_ms = _with_pauses(utterances, 8_000)
    payload = encode_mulaw(samples)
    decoder = LegDecoder(Codec.MULAW, 8_000)
    pcm = b"".join(
        decoder.decode(payload[i : i + 160]).astype("<i2").tobytes() for i in range(0, len(payload), 160)
    )
    events = await _transcribe(whisper_engine, pcm)
    wer = _check_finals(events, utterances, starts_ms)
    print(f"asterisk mu-law WER {wer:.3f}")
    assert wer <= 0.15


async def test_partials_come_at_least_once_per_second_of_a_long_turn(whisper_engine):
    utt = max(librivox_utterances(), key=lambda u: u.duration_s)
    samples, _ = _with_pauses([utt], 16_000)
    events = await _transcribe(whisper_engine, samples.astype("<i2").tobytes(), paced=True)
    final = next(e for e in events if isinstance(e, FinalText))
    partials = [e for e in events if isinstance(e, PartialText) and e.start_ms == final.start_ms]
    assert events.index(final) > max(events.index(p) for p in partials)
    ends = [final.start_ms, *(p.end_ms for p in partials), final.end_ms]
    print(ends)
    # A partial is due a second of turn audio after the newest audio the last one covered, and
    # grows to the audio the VAD has seen when its decode starts: here, fed faster than real time
    # in 250 ms steps, up to two steps more (the step being segmented and the one after it).
    assert max(b - a for a, b in zip(ends, ends[1:], strict=False)) <= 1_000 + 2 * 250 + 100
    assert [p.revision for p in partials] == list(range(len(partials)))


async def test_full_speed_input_skips_stale_partials_but_keeps_every_final(whisper_engine):
    utterances = librivox_utterances()
    samples, _ = _with_pauses(utterances, 16_000)
    events = await _transcribe(whisper_engine, samples.astype("<i2").tobytes())
    finals = [e for e in events if isinstance(e, FinalText)]
    partials = [e for e in events if isinstance(e, PartialText)]
    assert len(finals) == len(utterances)
    assert len(partials) < (len(samples) / 16_000)  # far fewer than one per second of audio
