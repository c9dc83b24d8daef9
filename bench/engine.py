"""Capacity curve of the embedded CPU engine: `python -m bench.engine [--legs 1,2,4,8] [--mode both]`.

Runs N LocalSessions in one process, each fed real speech at real-time pace in 20 ms frames
(LibriVox reading at 16 kHz on even legs; Asterisk 8 kHz phone prompts through G.711 mu-law on
odd legs, when installed), and prints per N:

- partial lag: wall time a partial came out minus the wall time its newest audio (end_ms) was
  due to arrive at real-time pace. Measured from the pace, not from when send_audio returned, so
  backpressure on the sender counts as lag too.
- first partial: wall time of a turn's first partial minus the wall time its speech start
  (start_ms, the onset) was due: how long hints that fire on partials wait.
- final latency: a final's wall time minus the time its turn's end_ms arrived. end_ms is the end
  of speech plus the segmenter's 150 ms post-roll; the segmenter only knows the turn is over
  max_silence_ms (600 ms) after the last speech, so ~450 ms of this is the end-pointing wait.
- WER of the finals against the references (jiwer, tests.speech.normalise_text), CPU use
  (process CPU seconds / wall seconds: cores busy) and the mean decode batch size.

`--mode legacy` gives each session its own one-at-a-time decoder with the VAD always in a
thread (the design before the shared scheduler); `--mode batched` the process-wide scheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field

import jiwer
import numpy as np

from ingest.events import Codec
from tests.speech import Utterance, asterisk_available, asterisk_prompts, librivox_utterances, normalise_text
from transcribe.codec import LegDecoder, encode_mulaw
from transcribe.decode_scheduler import DecodeScheduler
from transcribe.local_session import LocalSession, LocalSessionConfig
from transcribe.session import FinalText, PartialText, SessionError
from transcribe.whisper_engine import WhisperConfig, WhisperEngine

FRAME_BYTES = 640  # 20 ms of PCM16 at 16 kHz
PAUSE_S = 1.2


@dataclass
class LegScript:
    pcm16_16k: bytes
    reference: str
    offset_s: float  # when the leg starts, after the step starts


@dataclass
class LegResult:
    partial_lags_s: list[float] = field(default_factory=list)
    first_partials_s: list[float] = field(default_factory=list)  # speech start -> a turn's first partial
    final_latencies_s: list[float] = field(default_factory=list)
    hypothesis: list[str] = field(default_factory=list)
    errors: int = 0


def _to_16k(utt: Utterance) -> np.ndarray:
    if utt.sample_rate_hz == 16_000:
        return utt.samples
    decoder = LegDecoder(Codec.MULAW, 8_000)
    payload = encode_mulaw(utt.samples)
    return np.concatenate([decoder.decode(payload[i : i + 160]) for i in range(0, len(payload), 160)])


def leg_scripts(legs: int, seconds: float) -> list[LegScript]:
    """Per leg, utterances separated by pauses up to `seconds` of audio; phone prompts on odd legs."""
    books = librivox_utterances()
    phone = asterisk_prompts() if asterisk_available() else ()
    scripts = []
    for leg in range(legs):
        pool = phone if leg % 2 and phone else books
        pause = np.zeros(int(PAUSE_S * 16_000), dtype=np.int16)
        parts, texts, total, i = [pause], [], len(pause), leg * 3
        while total / 16_000 < seconds:
            utt = pool[i % len(pool)]
            samples = _to_16k(utt)
            if texts and (total + len(samples)) / 16_000 > seconds:
                break
            parts += [samples, pause]
            texts.append(utt.text)
            total += len(samples) + len(pause)
            i += 1
        audio = np.concatenate(parts).astype("<i2").tobytes()
        scripts.append(LegScript(audio, " ".join(texts), offset_s=(leg * 0.37) % 1.5))
    return scripts


async def run_leg(session: LocalSession, script: LegScript, t0: float) -> LegResult:
    result = LegResult()
    start = t0 + script.offset_s
    seen: set[int] = set()  # turns (start_ms) whose first partial came

    async def collect() -> None:
        async for event in session.events():
            now = time.perf_counter()
            match event:
                case PartialText(start_ms=start_ms, end_ms=end_ms):
                    result.partial_lags_s.append(now - (start + end_ms / 1000))
                    if start_ms not in seen:
                        seen.add(start_ms)
                        result.first_partials_s.append(now - (start + start_ms / 1000))
                case FinalText(end_ms=end_ms, text=text):
                    result.final_latencies_s.append(now - (start + end_ms / 1000))
                    result.hypothesis.append(normalise_text(text))
                case SessionError():
                    result.errors += 1

    async with session, asyncio.TaskGroup() as tasks:
        tasks.create_task(collect(), name="bench-collect")
        audio = script.pcm16_16k
        for k, i in enumerate(range(0, len(audio), FRAME_BYTES)):
            due = start + (k + 1) * 0.02  # the frame exists once its last sample is captured
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await session.send_audio(audio[i : i + FRAME_BYTES])
        await session.end_input()
    return result


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_step(
    engine: WhisperEngine,
    legs: int,
    seconds: float,
    mode: str,
    early_final: bool = True,
    first_partial_ms: int = LocalSessionConfig.first_partial_ms,
) -> dict[str, float]:
    scripts = leg_scripts(legs, seconds)
    shared = DecodeScheduler(engine) if mode == "batched" else None
    private = (
        [DecodeScheduler(engine, max_batch=1, workers=1, urgent_workers=0) for _ in scripts]
        if shared is None
        else []
    )
    legacy = LocalSessionConfig(inline_vad_samples=0, early_final=False)
    batched = LocalSessionConfig(early_final=early_final, first_partial_ms=first_partial_ms)
    sessions = [
        LocalSession(engine, batched, scheduler=shared)
        if shared
        else LocalSession(engine, legacy, scheduler=p)
        for p in (private or [None] * legs)
    ]
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(run_leg(s, sc, t0) for s, sc in zip(sessions, scripts, strict=True)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for scheduler in [*private, *([shared] if shared else [])]:
        scheduler.close()
    stats = [s.stats for s in ([shared] if shared else private)]
    lags = [x for r in results for x in r.partial_lags_s]
    firsts = [x for r in results for x in r.first_partials_s]
    finals = [x for r in results for x in r.final_latencies_s]
    audio_s = sum(len(sc.pcm16_16k) for sc in scripts) / 32_000
    wer = jiwer.wer([sc.reference for sc in scripts], [" ".join(r.hypothesis) or "-" for r in results])
    return {
        "legs": legs,
        "partial_p50": pct(lags, 50),
        "partial_p95": pct(lags, 95),
        "first_p50": pct(firsts, 50),
        "first_p95": pct(firsts, 95),
        "final_p50": pct(finals, 50),
        "final_p95": pct(finals, 95),
        "wer": wer,
        "cores": cpu / wall,
        "cpu_per_audio": cpu / audio_s,
        "batch": sum(s.decoded for s in stats) / max(1, sum(s.batches for s in stats)),
        "partials": len(lags),
        "errors": sum(r.errors for r in results),
    }


HEADER = (
    "mode     legs  partial p50/p95 s  first partial p50/p95 s  final p50/p95 s   WER    cores  cpu/audio"
    "  batch  partials"
)


def row(mode: str, r: dict[str, float]) -> str:
    return (
        f"{mode:<8} {r['legs']:>4}  {r['partial_p50']:6.2f} / {r['partial_p95']:5.2f}   "
        f"{r['first_p50']:12.2f} / {r['first_p95']:5.2f}   "
        f"{r['final_p50']:6.2f} / {r['final_p95']:5.2f}   {r['wer']:5.3f}  {r['cores']:5.2f}  "
        f"{r['cpu_per_audio']:9.3f}  {r['batch']:5.2f}  {r['partials']:>8}"
        + (f"  errors {r['errors']}" if r["errors"] else "")
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.splitlines()[0])
    p.add_argument("--legs", default="1,2,4,8,12,16", help="concurrent legs per step, comma-separated")
    p.add_argument("--seconds", type=float, default=25.0, help="audio per leg per step (default 25)")
    p.add_argument("--mode", choices=("legacy", "batched", "both"), default="both")
    defaults = WhisperConfig()
    p.add_argument(
        "--workers", type=int, default=defaults.num_workers, help="decode threads taking any request"
    )
    p.add_argument(
        "--urgent-workers",
        type=int,
        default=defaults.urgent_workers,
        help="decode threads for finals and a turn's first text only",
    )
    p.add_argument(
        "--max-batch", type=int, default=defaults.max_batch_size, help="requests per batched decode"
    )
    p.add_argument(
        "--cpu-threads", type=int, default=defaults.cpu_threads, help="intra-op threads per decode"
    )
    p.add_argument("--no-early-final", action="store_true", help="batched mode without early finals")
    p.add_argument(
        "--first-partial-ms",
        type=int,
        default=LocalSessionConfig.first_partial_ms,
        help="batched mode: speech before a turn's first partial request",
    )
    return p


async def amain(args: argparse.Namespace) -> None:
    legs = [int(n) for n in args.legs.split(",")]
    modes = ["legacy", "batched"] if args.mode == "both" else [args.mode]
    engines = {
        "legacy": WhisperEngine(WhisperConfig(cpu_threads=args.cpu_threads, urgent_workers=0)),
        "batched": WhisperEngine(
            WhisperConfig(
                cpu_threads=args.cpu_threads,
                num_workers=args.workers,
                urgent_workers=args.urgent_workers,
                max_batch_size=args.max_batch,
            )
        ),
    }
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(HEADER, flush=True)
    for n in legs:  # modes side by side per step: the shared machine's load drifts
        for mode in modes:
            r = await run_step(
                engines[mode], n, args.seconds, mode, not args.no_early_final, args.first_partial_ms
            )
            print(row(mode, r), flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(amain(parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
