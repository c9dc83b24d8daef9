"""Utterance timing on a /v1/realtime server, paced in real time: the figures behind the README's
"Segmentation with vLLM" section. Prints percentiles; asserts nothing.

    .venv/bin/python -m bench.realtime [vllm|serve] [repetitions]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.conformance.peers import Peer, RawClient, vllm_peer
from tests.speech import librivox_utterances

CHUNK_S = 0.1


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def one(peer: Peer, samples: np.ndarray) -> dict[str, float]:
    client = await RawClient.open(peer)
    await client.recv()
    await client.send(type="session.update", model=peer.model)
    step = int(CHUNK_S * 16_000)
    await client.send(type="input_audio_buffer.commit")
    start = time.monotonic()
    first: float | None = None
    lags: list[float] = []  # (arrival of delta) - (wall time the audio it follows was sent)
    deltas = 0

    async def receive() -> float:
        nonlocal first, deltas
        while True:
            event = await client.recv(within_s=120)
            now = time.monotonic()
            if event["type"] == "transcription.delta":
                first = first or now - start
                deltas += 1
                # Voxtral: delta k covers audio up to ~k x 80 ms; lag = arrival - when that audio was sent.
                lags.append(now - (start + deltas * 0.08))
            elif event["type"] == "transcription.done":
                return now

    receiver = asyncio.create_task(receive())
    for i in range(0, len(samples), step):
        await client.send(type="input_audio_buffer.append", audio=_b64(samples[i : i + step]))
        await asyncio.sleep(max(0.0, start + (i + step) / 16_000 - time.monotonic()))
    final_at = time.monotonic()
    await client.send(type="input_audio_buffer.commit", final=True)
    done_at = await receiver
    await client.close()
    return {
        "first_delta_s": first or float("nan"),
        "done_after_final_s": done_at - final_at,
        "lag_p50": pct(lags, 50),
    }


def _b64(samples: np.ndarray) -> str:
    import base64

    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


async def bench(peer: Peer, repetitions: int) -> None:
    utterances = librivox_utterances()
    rows = [await one(peer, utterances[i % len(utterances)].samples) for i in range(repetitions)]
    chunk_ms = CHUNK_S * 1000
    print(f"{peer.name}: {repetitions} LibriVox utterances paced in real time, {chunk_ms:.0f} ms appends")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"  {key:20s} p50 {pct(values, 50):.3f} s  p95 {pct(values, 95):.3f} s")


async def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "serve"
    repetitions = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if which == "vllm":
        with tempfile.TemporaryDirectory() as tmp, vllm_peer(Path(tmp)) as peer:
            await bench(peer, repetitions)
        return
    from transcribe.serve import RealtimeServer, ServeConfig
    from transcribe.whisper_engine import shared_engine

    async with RealtimeServer(shared_engine(), ServeConfig(port=0)) as server:
        await bench(Peer("serve", server.port, "callscope-whisper-tiny.en", 3600), repetitions)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
