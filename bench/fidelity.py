"""Streaming fidelity against batch decoding: `python -m bench.fidelity [--pipeline] [--legs 1,8]`.

Replays real speech (Asterisk 8 kHz phone prompts a-l of 2-9 s, and those of 9-30 s as
`asterisk-long`, longer than the engine's 10 s window: their finals are decoded in the 30 s
window; the a-l prompts whose texts have digits, "press 1 to ..." menus of 2-22 s, as
`asterisk-digits`; LibriVox reading) through the streaming
path: each utterance goes through G.711 mu-law at 8 kHz and back (transcribe/codec.py, as a call
leg's audio would), then into LocalSessions (Silero VAD, segmenter, decode scheduler, Whisper
tiny.en) in 20 ms frames at `--speed` times real time. The utterances of a set are dealt round
robin to the legs, so every step decodes the same audio whatever the number of legs. Per set and
per number of legs it prints, for the same audio and the same model:

- stream WER: the finals of each leg, joined, against that leg's references, joined (so a turn
  cut in two or two prompts merged count only for the words they lose or add);
- batch WER: the same model decoding each mu-law utterance whole: the engine's own decode where
  the utterance fits its 10 s window, else faster-whisper's transcribe (greedy, 30 s window,
  timestamps, no conditioning, no VAD); both are printed per set too;
- ratio: stream WER / batch WER (the goal is <= 1.15);
- onset: stored final start minus the true speech onset (first 10 ms frame above -35 dBFS in the
  utterance), median and worst, in ms; and words clipped: references whose first word is missing
  from the start of the first final that covers them.

With `--pipeline` the same legs go through the WHOLE pipeline instead (bench/pipeline.py's
run: embedded Tansu and PostgreSQL, `callscope transcribe`, `analyze` and `store` as processes):
each pair of legs is one two-leg call replayed through Kafka as G.711 mu-law 8 kHz at `--speed`
(a single leg's call has a silent customer), all sets of one step in one run, `legs` legs at once;
the stream WER is then that of the finals PostgreSQL holds, per leg ordered by start. The batch
WER is the same model decoding the same audio whole, in this process, before the stages start.

Every WER is scored on canonical text (bench/scoring.py: one spelling for "1"/"one", "I'm"/"I am",
"Mr."/"mister", as Whisper's own normaliser does; and a compound written open in one text and
closed in another, "touch tone"/"touchtone", written closed); `plain ratio` is the ratio without
it (the form the figures before had).

Figures from a shared machine: the WERs and the ratio do not depend on its load unless decoding
falls behind, which the `lag` column (final latency p95) shows.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from bench.scoring import wer
from ingest.events import Codec
from tests.speech import Utterance, asterisk_prompts, librivox_utterances, normalise_text
from transcribe.codec import LegDecoder, _half_band_filter, encode_mulaw, to_int16
from transcribe.decode_scheduler import DecodeScheduler
from transcribe.local_session import LocalSession, LocalSessionConfig
from transcribe.session import FinalText, SessionError
from transcribe.whisper_engine import WINDOW_SAMPLES, WhisperEngine

RATE = 16_000
FRAME_BYTES = 640  # 20 ms of PCM16 at 16 kHz
PAUSE_S = 1.2
ONSET_DBFS = -35.0


def at_8k(utt: Utterance) -> np.ndarray:
    """int16 8 kHz samples of the utterance, before the codec (a 16 kHz one band-limited first)."""
    samples = utt.samples
    if utt.sample_rate_hz == 16_000:  # band-limit to 3.8 kHz, then keep every other sample
        taps = _half_band_filter() / 2
        filtered = np.convolve(samples.astype(np.float64), taps, mode="same")
        samples = to_int16(filtered[::2])
    return samples


def through_phone(utt: Utterance) -> np.ndarray:
    """int16 16 kHz samples of the utterance after G.711 mu-law at 8 kHz (resampled first if 16 kHz)."""
    samples = at_8k(utt)
    decoder = LegDecoder(Codec.MULAW, 8_000)
    payload = encode_mulaw(samples)
    return np.concatenate([decoder.decode(payload[i : i + 160]) for i in range(0, len(payload), 160)])


def speech_onset(samples: np.ndarray, rate: int = RATE) -> int:
    """First sample of the first 10 ms frame louder than ONSET_DBFS (RMS), or 0."""
    hop = rate // 100
    x = samples.astype(np.float32) / 32768.0
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    rms_db = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    loud = np.flatnonzero(rms_db > ONSET_DBFS)
    return int(loud[0]) * hop if len(loud) else 0


@dataclass
class Placed:
    utt: Utterance
    audio: np.ndarray  # int16 16 kHz after the phone channel
    start: int  # sample position in the leg
    onset: int  # true speech onset, sample position in the leg


@dataclass
class Leg:
    placed: list[Placed] = field(default_factory=list)
    audio: bytes = b""

    @property
    def reference(self) -> str:
        return " ".join(p.utt.text for p in self.placed)


def build_legs(utterances: list[tuple[Utterance, np.ndarray]], legs: int) -> list[Leg]:
    legs = max(1, min(legs, len(utterances)))  # a leg with nothing to say would score its "-"
    out = [Leg() for _ in range(legs)]
    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.int16)
    parts: list[list[np.ndarray]] = [[pause] for _ in range(legs)]
    pos = [len(pause)] * legs
    for i, (utt, audio) in enumerate(utterances):
        k = i % legs
        out[k].placed.append(Placed(utt, audio, pos[k], pos[k] + speech_onset(audio)))
        parts[k] += [audio, pause]
        pos[k] += len(audio) + len(pause)
    for leg, p in zip(out, parts, strict=True):
        leg.audio = np.concatenate(p).astype("<i2").tobytes()
    return out


@dataclass(frozen=True)
class StoredFinal:
    start_ms: int
    end_ms: int
    text: str


def pipeline_calls(built: list[Leg], tag: str) -> tuple[list, list[tuple[str, str, Leg]]]:
    """Two legs to a call (agent, customer; a lone last leg gets a silent customer), as ReplayCalls
    at 8 kHz, and where each bench leg went (call id, leg). Each utterance is placed where the
    bench leg has it, as its 8 kHz samples before the codec: the replay encodes them as mu-law
    once, as through_phone() did for the batch reference (not the already decoded audio twice)."""
    from ingest.replay import ReplayCall
    from ingest.wavsource import Recording

    calls, where = [], []
    for k in range(0, len(built), 2):
        pair = built[k : k + 2]
        audio = []
        for leg in pair:
            samples = np.zeros(len(leg.audio) // 4, dtype=np.int16)  # 16 kHz PCM16 bytes -> 8 kHz samples
            for p in leg.placed:
                clip = at_8k(p.utt)
                samples[p.start // 2 : p.start // 2 + len(clip)] = clip[: len(samples) - p.start // 2]
            audio.append(samples)
        length = max(len(a) for a in audio)
        audio = [np.pad(a, (0, length - len(a))) for a in audio]
        if len(audio) == 1:
            audio.append(np.zeros(length, dtype=np.int16))
        call_id = f"fidelity-{tag}-{uuid.uuid4().hex[:8]}-{k // 2}"
        legs = dict(zip(("agent", "customer"), audio, strict=True))
        calls.append(
            ReplayCall(Recording(legs, 8_000), call_id=call_id, agent_id="agent-fidelity", queue="fidelity")
        )
        where += [(call_id, name, leg) for name, leg in zip(("agent", "customer"), pair, strict=False)]
    return calls, where


async def pipeline_step(
    sets: dict[str, list[tuple[Utterance, np.ndarray]]], legs: int, speed: float, environ: dict[str, str]
) -> tuple[dict[str, dict[str, float]], str]:
    """One whole-pipeline run holding every set's legs, `legs` at a time; per set its scores."""
    from sqlalchemy import select

    from bench.pipeline import run_bench
    from ingest.events import Codec as AudioCodec
    from ingest.wavsource import OutputFormat
    from pipeline.settings import StageSettings
    from store.models import Segment

    placed: dict[str, list[tuple[str, str, Leg]]] = {}
    calls = []
    for name, utterances in sets.items():
        set_calls, placed[name] = pipeline_calls(build_legs(utterances, legs), name)
        calls += set_calls
    rows: dict[tuple[str, str], list[StoredFinal]] = {}

    async def read_stored(engine, call_ids: list[str]) -> None:
        query = select(Segment.call_id, Segment.leg, Segment.start_ms, Segment.end_ms, Segment.text).where(
            Segment.call_id.in_(call_ids), Segment.text.is_not(None)
        )
        async with engine.connect() as conn:
            for call_id, leg, start_ms, end_ms, text in (await conn.execute(query)).all():
                rows.setdefault((call_id, leg), []).append(StoredFinal(start_ms or 0, end_ms or 0, text))

    report = await run_bench(
        calls,
        speed=speed,
        fmt=OutputFormat(AudioCodec.MULAW, 8_000),
        concurrency=max(1, math.ceil(legs / 2)),
        partitions=StageSettings().partitions,
        environ=environ,
        read_stored=read_stored,
    )
    out = {}
    for name, where in placed.items():
        refs, hyps, onsets, clipped = [], [], [], 0
        for call_id, leg_name, leg in where:
            finals = sorted(
                (f for f in rows.get((call_id, leg_name), []) if f.text.strip()), key=lambda f: f.start_ms
            )
            refs.append(leg.reference)
            hyps.append(" ".join(normalise_text(f.text) for f in finals) or "-")
            e, c = onset_errors(leg, finals)
            onsets += e
            clipped += c
        out[name] = {
            "wer": wer(refs, hyps),
            "wer_plain": wer(refs, hyps, plain=True),
            "legs": len(where),
            "onset_p50": float(np.median(onsets)) if onsets else float("nan"),
            "onset_worst": float(max(onsets, key=abs)) if onsets else float("nan"),
            "onset_within_150": sum(-150 <= e <= 150 for e in onsets) / max(1, len(onsets)),
            "clipped": clipped,
            "hyps": hyps,
            "refs": refs,
        }
    return out, report.render()


@dataclass
class LegResult:
    finals: list[FinalText] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    long_latencies_s: list[float] = field(default_factory=list)  # finals of turns over 10 s
    errors: int = 0


async def run_leg(session: LocalSession, leg: Leg, speed: float, t0: float) -> LegResult:
    result = LegResult()

    async def collect() -> None:
        async for event in session.events():
            match event:
                case FinalText(end_ms=end_ms):
                    result.finals.append(event)
                    lag = time.perf_counter() - (t0 + end_ms / 1000 / speed)
                    result.latencies_s.append(lag)
                    if event.end_ms - event.start_ms > WINDOW_SAMPLES * 1000 // RATE:
                        result.long_latencies_s.append(lag)
                case SessionError():
                    result.errors += 1

    async with session, asyncio.TaskGroup() as tasks:
        tasks.create_task(collect(), name="fidelity-collect")
        for k, i in enumerate(range(0, len(leg.audio), FRAME_BYTES)):
            due = t0 + (k + 1) * 0.02 / speed
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await session.send_audio(leg.audio[i : i + FRAME_BYTES])
        await session.end_input()
    return result


def onset_errors(leg: Leg, finals: list[FinalText] | list[StoredFinal]) -> tuple[list[float], int]:
    """Per utterance: first final overlapping it, its start minus the true onset (ms); clipped first words."""
    errors, clipped = [], 0
    for p in leg.placed:
        lo, hi = p.start * 1000 // RATE, (p.start + len(p.audio)) * 1000 // RATE
        covering = [f for f in finals if f.end_ms > lo and f.start_ms < hi and f.text.strip()]
        if not covering:
            clipped += 1
            continue
        first = min(covering, key=lambda f: f.start_ms)
        errors.append(first.start_ms - p.onset * 1000 / RATE)
        words = normalise_text(first.text).split()
        if p.utt.text.split()[0] not in words[:2]:
            clipped += 1
    return errors, clipped


async def stream_step(
    engine: WhisperEngine,
    utterances: list[tuple[Utterance, np.ndarray]],
    legs: int,
    speed: float,
    final_engine: WhisperEngine | None = None,
) -> dict[str, float]:
    built = build_legs(utterances, legs)
    scheduler = DecodeScheduler(engine, final_engine=final_engine)
    config = LocalSessionConfig(two_pass=final_engine is not None)
    sessions = [LocalSession(engine, config, scheduler=scheduler) for _ in built]
    t0 = time.perf_counter() + 0.05
    cpu0 = time.process_time()
    runs = (run_leg(s, leg, speed, t0) for s, leg in zip(sessions, built, strict=True))
    results = await asyncio.gather(*runs)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    scheduler.close()
    refs = [leg.reference for leg in built]
    hyps = [" ".join(normalise_text(f.text) for f in r.finals) or "-" for r in results]
    onsets, clipped = [], 0
    for leg, r in zip(built, results, strict=True):
        e, c = onset_errors(leg, r.finals)
        onsets += e
        clipped += c
    latencies = [x for r in results for x in r.latencies_s]
    long_latencies = [x for r in results for x in r.long_latencies_s]
    return {
        "wer": wer(refs, hyps),
        "wer_plain": wer(refs, hyps, plain=True),
        "onset_p50": float(np.median(onsets)) if onsets else float("nan"),
        "onset_worst": float(max(onsets, key=abs)) if onsets else float("nan"),
        "onset_within_150": sum(-150 <= e <= 150 for e in onsets) / max(1, len(onsets)),
        "clipped": clipped,
        "lag_p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "lag_p50": float(np.median(latencies)) if latencies else float("nan"),
        "long_lag_p50": float(np.median(long_latencies)) if long_latencies else float("nan"),
        "long_lag_max": max(long_latencies, default=float("nan")),
        "long_finals": len(long_latencies),
        "cores": cpu / wall,
        "errors": sum(r.errors for r in results),
        "hyps": hyps,
        "refs": refs,
    }


def batch_hypotheses(
    engine: WhisperEngine, utterances: list[tuple[Utterance, np.ndarray]]
) -> tuple[list[str], list[str]]:
    """Each utterance decoded whole: (faster-whisper's own transcribe, the engine's decode).

    The first is the same model and weights (tiny.en int8), greedy, in faster-whisper's 30 s
    window with timestamps, not conditioned on other text, no VAD filter: it does not change when
    the streaming engine does. The second is the engine's own decode (its 10 s window, Whisper's
    30 s window for a clip longer than that).
    """
    model = engine._model  # the engine's loaded faster-whisper model: same weights, same compute type
    whole, window = [], []
    for _, audio in utterances:
        x = audio.astype(np.float32) / 32768.0
        segments, _ = model.transcribe(
            x, language="en", beam_size=1, temperature=0.0, condition_on_previous_text=False, vad_filter=False
        )
        whole.append(normalise_text(" ".join(s.text for s in segments)) or "-")
        window.append(normalise_text(engine.decode(x).text) or "-")
    return whole, window


def batch_wer(
    engine: WhisperEngine, utterances: list[tuple[Utterance, np.ndarray]], *, plain_too: bool = False
) -> tuple[float, ...]:
    """(reference, faster-whisper transcribe, engine window) WERs of whole-utterance decoding.

    The reference decodes each utterance whole the way this model does best with it: the
    engine's own decode where the utterance fits its 10 s window (what a turn gets when nothing
    goes wrong in streaming), faster-whisper's 30 s transcribe where it does not. `plain_too`:
    a fourth figure, the reference's WER without the canonical spelling (the figures before it).
    """
    refs = [u.text for u, _ in utterances]
    whole, window = batch_hypotheses(engine, utterances)
    fits = [len(a) <= WINDOW_SAMPLES for _, a in utterances]
    reference = [x if fit else w for w, x, fit in zip(whole, window, fits, strict=True)]
    out = (wer(refs, reference), wer(refs, whole), wer(refs, window))
    return (*out, wer(refs, reference, plain=True)) if plain_too else out


def ratio_of(stream: float, batch: float) -> float:
    """stream WER / batch WER; 1 when both are 0 (nothing lost), inf when only batch is 0."""
    if batch:
        return stream / batch
    return 1.0 if not stream else float("inf")


def load_set(name: str, limit: int | None) -> list[tuple[Utterance, np.ndarray]]:
    sets = {
        "asterisk": lambda: asterisk_prompts(),
        "asterisk-long": lambda: asterisk_prompts(9.0, 30.0),  # longer than the decode window: cut
        # The a-l prompts whose texts have digits ("press 1 to ..." menus, mostly 12-22 s).
        "asterisk-digits": lambda: asterisk_prompts(2.0, 30.0, digits=True),
        "librivox": librivox_utterances,
    }
    if name not in sets:
        raise SystemExit(f"bench.fidelity: unknown set {name!r} (known: {', '.join(sets)})")
    utts = list(sets[name]())
    if limit:
        utts = utts[:limit]
    return [(u, through_phone(u)) for u in utts]


HEADER = (
    "set           utts  legs  stream WER  batch WER  ratio  onset p50/worst ms  <=150ms  clipped"
    "  lag p95 s  cores  plain ratio"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__.splitlines()[0])
    p.add_argument(
        "--sets", default="asterisk,asterisk-long,asterisk-digits,librivox", help="sets, comma-separated"
    )
    p.add_argument("--legs", default="1,8", help="concurrent legs per step, comma-separated")
    p.add_argument("--speed", type=float, default=1.0, help="feed audio at this many times real time")
    p.add_argument("--limit", type=int, default=None, help="first N utterances of each set only")
    p.add_argument("--show", action="store_true", help="print each leg's reference and streamed text")
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="through the whole pipeline (replay -> Kafka -> transcribe -> analyze -> store -> PostgreSQL)",
    )
    p.add_argument(
        "--report", action="store_true", help="with --pipeline: also print bench.pipeline's report"
    )
    p.add_argument(
        "--final-model",
        metavar="MODEL",
        help="two-pass: finals on this model ('base' or a folder; the batch reference is then this model)",
    )
    return p


PIPELINE_HEADER = (
    "set           utts  legs  stored WER  batch WER  ratio  onset p50/worst ms  <=150ms  clipped"
    "  plain ratio"
)


def final_engine_of(args: argparse.Namespace) -> WhisperEngine | None:
    from transcribe.models import resolve_model
    from transcribe.whisper_engine import WhisperConfig

    if not args.final_model:
        return None
    return WhisperEngine(WhisperConfig(model_path=resolve_model(args.final_model)))


async def pipeline_main(args: argparse.Namespace) -> None:
    # The batch reference, in this process, before the stages start: the model the finals come from.
    engine = final_engine_of(args) or WhisperEngine()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    sets, batch, batch_plain = {}, {}, {}
    for name in args.sets.split(","):
        sets[name] = load_set(name, args.limit)
        batch[name], _, _, batch_plain[name] = batch_wer(engine, sets[name], plain_too=True)
        print(
            f"{name}: whole-utterance batch WER {batch[name]:.3f} ({len(sets[name])} utterances)", flush=True
        )
    del engine
    for legs in (int(n) for n in args.legs.split(",")):
        print(f"whole pipeline, {legs} legs at once ...", flush=True)
        environ = dict(os.environ)
        if args.final_model:
            environ["CALLSCOPE_TRANSCRIBE_FINAL_MODEL_PATH"] = args.final_model
        results, report = await pipeline_step(sets, legs, args.speed, environ)
        print(PIPELINE_HEADER, flush=True)
        for name, r in results.items():
            ratio, plain = ratio_of(r["wer"], batch[name]), ratio_of(r["wer_plain"], batch_plain[name])
            onset = f"{r['onset_p50']:7.0f} / {r['onset_worst']:6.0f}     {r['onset_within_150']:6.0%}"
            print(
                f"{name:<13} {len(sets[name]):>4}  {min(legs, r['legs']):>4}  {r['wer']:10.3f}  "
                f"{batch[name]:9.3f}  {ratio:5.2f}  {onset}  {r['clipped']:>7}  {plain:11.2f}",
                flush=True,
            )
            if args.show:
                for ref, hyp in zip(r["refs"], r["hyps"], strict=True):
                    print(f"  REF {ref}\n  HYP {hyp}")
        print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        if args.report:
            print(report, flush=True)


async def amain(args: argparse.Namespace) -> None:
    engine = WhisperEngine()
    final_engine = final_engine_of(args)  # two-pass: the batch reference is the finals' model
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(HEADER, flush=True)
    for name in args.sets.split(","):
        utterances = load_set(name, args.limit)
        batch, whole, window, batch_plain = batch_wer(final_engine or engine, utterances, plain_too=True)
        print(
            f"{name}: whole-utterance WER: reference {batch:.3f}, faster-whisper transcribe {whole:.3f}, "
            f"engine decode (10 s window; 30 s past 10 s) {window:.3f}",
            flush=True,
        )
        for legs in (int(n) for n in args.legs.split(",")):
            r = await stream_step(engine, utterances, legs, args.speed, final_engine)
            ratio, plain = ratio_of(r["wer"], batch), ratio_of(r["wer_plain"], batch_plain)
            legs = min(legs, len(utterances))
            print(
                f"{name:<13} {len(utterances):>4}  {legs:>4}  {r['wer']:10.3f}  {batch:9.3f}  {ratio:5.2f}  "
                f"{r['onset_p50']:7.0f} / {r['onset_worst']:6.0f}     {r['onset_within_150']:6.0%}  "
                f"{r['clipped']:>7}  {r['lag_p95']:9.2f}  {r['cores']:5.2f}  {plain:11.2f}"
                + (f"  errors {r['errors']}" if r["errors"] else ""),
                flush=True,
            )
            print(
                f"  speech end -> final: p50 {r['lag_p50']:.2f} s, p95 {r['lag_p95']:.2f} s; "
                f"finals of turns over 10 s: {r['long_finals']}, p50 {r['long_lag_p50']:.2f} s, "
                f"max {r['long_lag_max']:.2f} s",
                flush=True,
            )
            if args.show:
                for ref, hyp in zip(r["refs"], r["hyps"], strict=True):
                    print(f"  REF {ref}\n  HYP {hyp}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.pipeline:
        import warnings

        from deploy.stages import cancel_on
        from pipeline.logs import configure_logging
        from pipeline.stage import run_until_signalled

        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        configure_logging("text", os.environ.get("CALLSCOPE_LOG_LEVEL", "WARNING"))

        async def until_done(stop: asyncio.Event) -> None:
            # A signal cancels the run, which unwinds through bench.pipeline's finally blocks: the
            # stages, the broker and the database it started are stopped, not left behind.
            await cancel_on(stop, pipeline_main(args))

        try:
            asyncio.run(run_until_signalled(until_done))
        except asyncio.CancelledError:
            print("bench.fidelity interrupted", file=sys.stderr)
            return 130
    else:
        asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
