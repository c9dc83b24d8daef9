"""A live call's audio onto the audio topic at real-time pace, as the ingest gateway writes it."""

from __future__ import annotations

import asyncio
import math
import time

from aiokafka import AIOKafkaProducer

from ingest.events import LEGS, AudioFrame, Codec
from pipeline.topics import TOPICS

FRAME_MS = 20
RATE_HZ = 8000


def mulaw_tone(samples: int, hz: float, start: int) -> bytes:
    """G.711 mu-law of a quiet sine (encoded here so the test does not lean on the product's codec)."""
    out = bytearray()
    for i in range(samples):
        value = int(8000 * math.sin(2 * math.pi * hz * (start + i) / RATE_HZ))
        sign = 0x80 if value < 0 else 0
        magnitude = min(abs(value), 32635) + 0x84
        exponent = max(0, magnitude.bit_length() - 8)
        mantissa = (magnitude >> (exponent + 3)) & 0x0F
        out.append(~(sign | (exponent << 4) | mantissa) & 0xFF)
    return bytes(out)


async def play_call_audio(producer: AIOKafkaProducer, call_id: str, *, seconds: float) -> int:
    """Both legs, 20 ms frames, paced to the wall clock; returns the frames sent."""
    per_frame = RATE_HZ * FRAME_MS // 1000
    frames = round(seconds * 1000 / FRAME_MS)
    start = time.monotonic()
    for seq in range(frames):
        captured_at = time.time()
        for leg, hz in zip(LEGS, (440.0, 660.0), strict=True):
            frame = AudioFrame(
                call_id=call_id,
                leg=leg,
                codec=Codec.MULAW,
                sample_rate_hz=RATE_HZ,
                seq=seq,
                offset_samples=seq * per_frame,
                captured_at=captured_at,
                payload=mulaw_tone(per_frame, hz, seq * per_frame),
            )
            await producer.send(TOPICS.audio, frame.to_bytes(), key=call_id.encode())
        delay = start + (seq + 1) * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await producer.flush()
    return frames * 2
