"""Build the audio-topic records of a call for transcriber tests."""

from __future__ import annotations

import numpy as np

from ingest.events import AudioFrame, CallEnded, CallStarted, Codec, Leg
from transcribe.codec import encode_mulaw

FRAME_MS = 20


def frames_of(
    call_id: str,
    leg: Leg,
    samples: np.ndarray,
    *,
    sample_rate_hz: int,
    codec: Codec = Codec.MULAW,
    started_at: float = 1_700_000_000.0,
) -> list[AudioFrame]:
    """Cut int16 samples into 20 ms frames in the given codec."""
    step = sample_rate_hz * FRAME_MS // 1000
    frames = []
    for seq, start in enumerate(range(0, len(samples), step)):
        chunk = samples[start : start + step]
        payload = encode_mulaw(chunk) if codec == Codec.MULAW else chunk.astype("<i2").tobytes()
        frames.append(
            AudioFrame(
                call_id=call_id,
                leg=leg,
                codec=codec,
                sample_rate_hz=sample_rate_hz,
                seq=seq,
                offset_samples=start,
                captured_at=started_at + start / sample_rate_hz,
                payload=payload,
            )
        )
    return frames


def call_records(call_id: str, legs: dict[Leg, list[AudioFrame]], started_at: float = 1_700_000_000.0):
    """CallStarted, both legs' frames interleaved by position, CallEnded."""
    frames = sorted(
        (f for fs in legs.values() for f in fs), key=lambda f: (f.offset_samples / f.sample_rate_hz, f.leg)
    )
    end = max((f.captured_at for f in frames), default=started_at) + 0.02
    return [
        CallStarted(call_id=call_id, started_at=started_at),
        *frames,
        CallEnded(call_id=call_id, ended_at=end),
    ]
