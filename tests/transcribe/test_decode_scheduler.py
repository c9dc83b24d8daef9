"""The process-wide decode scheduler: batches across sessions, same text as decoding one by one."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from tests.speech import asterisk_available, asterisk_prompts, librivox_utterances
from transcribe.decode_scheduler import DecodeScheduler
from transcribe.whisper_engine import Transcription, WhisperConfig


class GatedEngine:
    """Fake engine: records each batch; the first batch waits until the test opens the gate."""

    def __init__(self) -> None:
        self.config = WhisperConfig()
        self.batches: list[list[float]] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def decode_batch(self, batch: list[np.ndarray]) -> list[Transcription]:
        self.batches.append([float(a[0]) for a in batch])
        self.started.set()
        if not self.gate.wait(timeout=10):
            raise TimeoutError("gate never opened")
        if any(a[0] < 0 for a in batch):
            raise RuntimeError("engine failed")
        return [Transcription(f"clip {a[0]:g}", 0.9) for a in batch]


def _scheduler(engine: GatedEngine, max_batch: int = 8) -> DecodeScheduler:
    return DecodeScheduler(engine, max_batch=max_batch, workers=1, urgent_workers=0)  # type: ignore[arg-type]


def _clip(value: float) -> np.ndarray:
    return np.full(4, value, dtype=np.float32)


async def test_requests_arriving_during_a_decode_run_together_in_the_next_batch():
    engine = GatedEngine()
    scheduler = _scheduler(engine, max_batch=3)
    try:
        first = scheduler.submit("s0", "final", _clip(0))
        await asyncio.to_thread(engine.started.wait, 10)
        later = [scheduler.submit(f"s{i}", "partial", _clip(i)) for i in range(1, 6)]
        engine.gate.set()
        assert (await first).text == "clip 0"  # type: ignore[union-attr]
        assert [(await f).text for f in later] == [f"clip {i}" for i in range(1, 6)]  # type: ignore[union-attr]
        assert engine.batches == [[0.0], [1.0, 2.0, 3.0], [4.0, 5.0]]
    finally:
        scheduler.close()


async def test_an_urgent_worker_takes_finals_and_first_text_while_a_revision_batch_decodes():
    engine = GatedEngine()
    scheduler = DecodeScheduler(engine, max_batch=2, workers=1, urgent_workers=1)  # type: ignore[arg-type]
    try:
        revision = scheduler.submit("s0", "partial", _clip(0))
        await asyncio.to_thread(engine.started.wait, 10)  # the general worker holds s0's revision
        engine.started.clear()
        waiting = scheduler.submit("s1", "partial", _clip(1))  # a revision: waits for the general worker
        first_text = scheduler.submit("s2", "partial", _clip(2), urgent=True)
        final = scheduler.submit("s3", "final", _clip(3))
        await asyncio.to_thread(engine.started.wait, 10)  # the urgent worker has taken its batch
        assert engine.batches[1] == [3.0, 2.0]  # finals first, then the turn's first text
        engine.gate.set()
        assert [(await f).text for f in (revision, waiting, first_text, final)] == [  # type: ignore[union-attr]
            "clip 0",
            "clip 1",
            "clip 2",
            "clip 3",
        ]
        assert sorted(map(sorted, engine.batches)) == [[0.0], [1.0], [2.0, 3.0]]
    finally:
        scheduler.close()


async def test_a_replaced_partial_resolves_to_none_and_only_the_newest_is_decoded():
    engine = GatedEngine()
    scheduler = _scheduler(engine)
    try:
        busy = scheduler.submit("s0", "final", _clip(0))
        await asyncio.to_thread(engine.started.wait, 10)
        old = scheduler.submit("s1", "partial", _clip(1))
        new = scheduler.submit("s1", "partial", _clip(2))
        assert await old is None
        engine.gate.set()
        await busy
        assert (await new).text == "clip 2"  # type: ignore[union-attr]
        assert engine.batches == [[0.0], [2.0]]
        assert scheduler.stats.superseded == 1
    finally:
        scheduler.close()


async def test_an_engine_error_reaches_every_request_of_the_batch():
    engine = GatedEngine()
    engine.gate.set()
    scheduler = _scheduler(engine)
    try:
        with pytest.raises(RuntimeError):
            await scheduler.submit("s0", "final", _clip(-1))
        assert (await scheduler.submit("s0", "final", _clip(1))).text == "clip 1"  # type: ignore[union-attr]
    finally:
        scheduler.close()


# -- the real model ---------------------------------------------------------------------------


def _clips() -> list[np.ndarray]:
    clips = [u.samples.astype(np.float32) / 32768 for u in librivox_utterances()[:3]]
    if asterisk_available():  # phone prompts at 8 kHz, repeated up to 16 kHz: enough for Whisper
        clips += [np.repeat(u.samples, 2).astype(np.float32) / 32768 for u in asterisk_prompts()[:2]]
    return clips


def test_a_batched_decode_gives_the_same_text_and_confidence_as_single_decodes(whisper_engine):
    clips = _clips()
    single = [whisper_engine.decode(c) for c in clips]
    batched = whisper_engine.decode_batch([*clips, np.zeros(0, dtype=np.float32)])
    assert [t.text for t in batched[:-1]] == [t.text for t in single]
    assert all(t.text for t in single)
    assert [round(t.confidence or 0, 3) for t in batched[:-1]] == [
        round(t.confidence or 0, 3) for t in single
    ]
    assert batched[-1] == Transcription("", None)


async def test_concurrent_sessions_through_the_scheduler_get_their_own_text(whisper_engine):
    clips = _clips()
    expected = [whisper_engine.decode(c).text for c in clips]
    scheduler = DecodeScheduler(whisper_engine, max_batch=4)
    try:
        futures = [scheduler.submit(i, "final", c) for i, c in enumerate(clips)]
        assert [(await f).text for f in futures] == expected  # type: ignore[union-attr]
        assert scheduler.stats.largest_batch > 1
    finally:
        scheduler.close()


class NamedEngine:
    """Fake engine that says which model decoded each clip."""

    def __init__(self, name: str) -> None:
        self.config = WhisperConfig()
        self.name = name
        self.batches: list[list[float]] = []

    def decode_batch(self, batch: list[np.ndarray]) -> list[Transcription]:
        self.batches.append([float(a[0]) for a in batch])
        return [Transcription(f"{self.name} {a[0]:g}", 0.9) for a in batch]


async def test_two_pass_finals_and_a_turns_early_decode_go_to_the_final_engine_partials_stay():
    fast, large = NamedEngine("tiny"), NamedEngine("base")
    scheduler = DecodeScheduler(fast, workers=1, final_engine=large)  # type: ignore[arg-type]
    try:
        partial = scheduler.submit("s0", "partial", _clip(0))
        final = scheduler.submit("s1", "final", _clip(1))
        early = scheduler.submit("s2", "partial", _clip(2), final_pass=True)
        got = [(await f).text for f in (partial, final, early)]  # type: ignore[union-attr]
    finally:
        scheduler.close()
    assert got == ["tiny 0", "base 1", "base 2"]
    assert sorted(x for b in large.batches for x in b) == [1.0, 2.0]
    assert [x for b in fast.batches for x in b] == [0.0]


async def test_without_a_final_engine_everything_decodes_on_the_one_engine():
    fast = NamedEngine("tiny")
    scheduler = DecodeScheduler(fast, workers=1)  # type: ignore[arg-type]
    try:
        got = [
            (await scheduler.submit(f"s{i}", kind, _clip(i), final_pass=True)).text  # type: ignore[union-attr]
            for i, kind in enumerate(("partial", "final"))
        ]
    finally:
        scheduler.close()
    assert got == ["tiny 0", "tiny 1"]
