"""The transcription worker against the real Kafka-protocol broker (Tansu) and the real model."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import jiwer
import numpy as np
import pytest

from ingest.events import AudioFrame, Codec, encode_audio_record
from pipeline.deadletter import DeadLetter
from pipeline.kafka import create_topics, make_producer
from pipeline.topics import TOPICS
from tests.speech import librivox_utterances, normalise_text
from tests.topics import read_until
from tests.transcribe.calls import call_records, frames_of
from transcribe.config import TranscribeConfig
from transcribe.events import FinalSegment, TranscriptCallEnded, parse_transcript_event, segment_id
from transcribe.worker import run

pytestmark = pytest.mark.e2e
DEADLINE_S = 90


@pytest.fixture(scope="module", autouse=True)
def _topics(bootstrap: str) -> None:
    """The pipeline's topics at two partitions on the module's broker."""
    asyncio.run(create_topics(bootstrap, partitions=2))


def _speech_call(call_id: str) -> tuple[list, str, list[int]]:
    """Customer reads three LibriVox lines (16 kHz PCM16) with 1 s pauses; agent leg is silent mu-law."""
    pause = np.zeros(16_000, dtype=np.int16)
    parts, starts, pos = [pause], [], 16_000
    utterances = librivox_utterances()[:3]
    for utt in utterances:
        starts.append(pos)
        parts += [utt.samples, pause]
        pos += len(utt.samples) + len(pause)
    customer = frames_of(call_id, "customer", np.concatenate(parts), sample_rate_hz=16_000, codec=Codec.PCM16)
    agent = frames_of(call_id, "agent", np.zeros(8_000 * 3, dtype=np.int16), sample_rate_hz=8_000)
    text = " ".join(u.text for u in utterances)
    return call_records(call_id, {"customer": customer, "agent": agent}), text, [s // 16 for s in starts]


async def _produce(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    producer = make_producer(bootstrap, client_id="test-audio")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(TOPICS.audio, value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def test_worker_transcribes_a_call_and_dead_letters_bad_input(bootstrap):
    good, reference, starts_ms = _speech_call("call-good")
    frame = next(r for r in good if isinstance(r, AudioFrame))
    truncated = encode_audio_record(frame)[:-7]
    bad_codec = bytearray(encode_audio_record(frame))
    bad_codec[6] = 9  # the codec byte: after magic (4), version and leg
    orphan = dataclasses.replace(frame, call_id="call-never-started")
    late = dataclasses.replace(frame, seq=99_999)
    records = [(r.call_id, encode_audio_record(r)) for r in good]
    # Bad records go in while the good call is in flight; the late frame after its call.ended.
    middle = len(records) // 2
    records[middle:middle] = [
        ("call-good", truncated),
        ("call-good", bytes(bad_codec)),
        ("call-never-started", encode_audio_record(orphan)),
    ]
    records.append(("call-good", encode_audio_record(late)))
    await _produce(bootstrap, records)

    stop = asyncio.Event()
    config = TranscribeConfig(
        kafka_bootstrap=bootstrap,
        group_id="test-transcribe",
        commit_interval_s=0.5,
        metrics_address="127.0.0.1:0",
    )
    worker = asyncio.create_task(run(config, stop=stop), name="test-worker")
    try:
        values = await read_until(
            bootstrap,
            TOPICS.transcripts,
            lambda vs: any(isinstance(parse_transcript_event(v), TranscriptCallEnded) for v in vs),
            DEADLINE_S,
        )
        letters = await read_until(bootstrap, TOPICS.deadletter, lambda vs: len(vs) >= 4, 30)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(worker, 30)

    events = [parse_transcript_event(v) for v in values]
    assert events[0].type == "call.started"
    assert events[-1].type == "call.ended"
    finals = [e for e in events if isinstance(e, FinalSegment)]
    assert {f.leg for f in finals} == {"customer"}
    for final in finals:
        assert final.segment_id == segment_id("call-good", "customer", final.start_ms)
        assert final.times.speech_ended_at is not None
        assert final.times.audio_captured_at > 1_700_000_000 and final.times.audio_received_at > 0
    for start_ms, final in zip(starts_ms, finals, strict=True):
        assert abs(final.start_ms - start_ms) <= 500
    hypothesis = " ".join(normalise_text(f.text) for f in finals)
    assert jiwer.wer(reference, hypothesis) <= 0.15

    reasons = {DeadLetter.model_validate_json(v).reason: DeadLetter.model_validate_json(v) for v in letters}
    assert {"truncated_frame", "unknown_codec", "call_not_started", "call_already_ended"} <= set(reasons)
    assert reasons["call_not_started"].source_topic == TOPICS.audio
    assert reasons["call_not_started"].source_offset is not None
