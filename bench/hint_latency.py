"""The demo's cancel hint against the moment the customer said it: `python -m bench.hint_latency`.

Replays the bundled demo call (`--calls` copies, `--concurrency` at a time, real-time pace)
through the whole pipeline as bench.pipeline starts it (real Tansu, PostgreSQL and the three
stage processes), reads the transcript and assist topics back, and prints, over every replay,
p50/p95/max of "end of 'account' said -> first retention-cancel hint emitted" (and from the
start of "cancel"), with n, the load average at start and end and the CPU count.

When the phrase was said comes from the audio, not from the transcript the pipeline produced:
the embedded Whisper engine decodes the customer's turn (located by the script's start time,
8 -> 16 kHz as the transcriber resamples) with word timestamps, and the phrase's words are found
there; the first silence after the last word (frame energy) is printed as a cross-check, since
Whisper's word ends are good to some tens of milliseconds. Call time maps to wall time per call
and leg through the partials' own stamps (see bench.said_to_hint). A call whose hint never came,
or whose partials do not agree on the mapping, is counted and named, never dropped silently.
A partial can hold the whole phrase before its last word has finished (the model completes
"acc..." to "account"), so a latency from the end of the phrase can be negative: it is kept,
and the report says how far each hint's segment reached into the audio.
Nothing is asserted against a timer; every wait has a deadline (bench.pipeline's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import procstat
from bench.collect import read_call_events
from bench.latency import Series
from bench.pipeline import repeated, run_bench_with, run_guarded, run_options
from bench.said_to_hint import HintOutcome, PhraseTiming, find_phrase, hint_timings, quiet_onset_s
from deploy.cli_common import (
    SERVICES_ENV,
    UsageError,
    configure_logging_from,
    formatter,
    logging_options,
    shared_settings,
)
from deploy.runtime import services
from ingest.events import Codec, Leg
from ingest.replay import ReplayCall
from pipeline.settings import SettingsError

log = logging.getLogger(__name__)
RULE_ID = "retention-cancel"  # analyze/rules.example.yaml: the hint the demo shows for it
PHRASE = "cancel my account"
LEG: Leg = "customer"
TURN_MARGIN_S = 0.25  # audio kept before the script's turn start, as make_demo_call --check does
MAX_CLIP_S = 29.0
_SCRIPT_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+(AGENT|CUSTOMER)\s+(.*\S)\s*$")


@dataclass(frozen=True)
class SaidAt:
    phrase: PhraseTiming  # from Whisper's word timestamps, call time
    quiet_after_s: float | None  # call time the leg fell silent after the phrase (energy)


def script_turns(script: Path) -> list[tuple[float, Leg, str]]:
    """(start s, leg, words) of each turn of a demo script (ingest/demo/demo_call.txt)."""
    turns: list[tuple[float, Leg, str]] = []
    for line in script.read_text().splitlines():
        if m := _SCRIPT_LINE.match(line):
            turns.append((float(m[1]), "agent" if m[2] == "AGENT" else "customer", m[3]))
    return turns


def locate_phrase(wav: Path, script: Path, phrase: str = PHRASE, leg: Leg = LEG) -> SaidAt:
    """Decode the leg's turn that contains `phrase` (per the script) and time the phrase's words."""
    import numpy as np

    from ingest.wavsource import load_stereo
    from transcribe.codec import LegDecoder
    from transcribe.whisper_engine import WhisperEngine

    turns = script_turns(script)
    starts = [
        (i, s) for i, (s, turn_leg, words) in enumerate(turns) if turn_leg == leg and phrase in words.lower()
    ]
    if not starts:
        raise ValueError(f"no {leg} turn of {script} says {phrase!r}")
    i, start_s = starts[0]
    # Up to the next turn's start, within Whisper's 30 s window.
    end_s = min(turns[i + 1][0] if i + 1 < len(turns) else float("inf"), start_s + MAX_CLIP_S)
    recording = load_stereo(wav)
    rate = recording.sample_rate_hz
    samples = recording.legs[leg]
    clip_start_s = max(0.0, start_s - TURN_MARGIN_S)
    clip = samples[int(clip_start_s * rate) : int(end_s * rate)]
    if rate == 16000:
        audio16 = clip
    else:
        # The transcriber's own 8 -> 16 kHz path (its ~2 ms group delay is the pipeline's too).
        audio16 = LegDecoder(Codec.PCM16, rate).decode(clip.astype("<i2").tobytes())
    heard = WhisperEngine().decode(audio16.astype(np.float32) / 32768.0, words=True)
    timing = find_phrase(heard.words, phrase, clip_start_s)
    if timing is None:
        raise ValueError(
            f"Whisper did not hear {phrase!r} in the {leg} turn at {start_s:.2f} s: {heard.text!r}"
        )
    quiet = quiet_onset_s(clip, rate, timing.end_s - clip_start_s)
    return SaidAt(timing, None if quiet is None else clip_start_s + quiet)


def render(said: SaidAt, outcome: HintOutcome, calls: int, machine_start, load_end: float) -> str:
    p = said.phrase
    quiet = f"{said.quiet_after_s:.3f} s" if said.quiet_after_s is not None else "not found"
    offset = outcome.max_start_offset_s
    start = "n/a" if offset is None else f"{offset * 1000:.1f} ms"
    ways = Counter(t.hint.matched_by for t in outcome.timings)
    matched = ", ".join(f"{way} {n}" for way, n in sorted(ways.items())) or "-"
    on_final = sum(t.hint.on_final for t in outcome.timings)
    lines = [
        f"phrase {p.phrase!r} on the {LEG} leg: said {p.start_s:.3f}-{p.end_s:.3f} s into the call "
        f"(Whisper word timestamps); the leg falls silent at {quiet} (energy)",
        f"call time -> wall time per call and leg from the partials' stamps: worst spread "
        f"{outcome.max_spread_s * 1000:.1f} ms; worst |leg base - call.started_at| {start}",
        f"{calls} calls: {len(outcome.timings)} with a {RULE_ID} hint ({on_final} fired on a final, "
        f"{len(outcome.timings) - on_final} on a partial; matched by {matched}), "
        f"{len(outcome.no_hint)} without, "
        f"{len(outcome.unmapped)} unmapped",
        Series(
            f"end of '{p.phrase.split()[-1]}' said -> hint emitted",
            tuple(t.from_end_s for t in outcome.timings),
        ).row(),
        Series(
            f"start of '{p.phrase.split()[0]}' said -> hint emitted",
            tuple(t.from_start_s for t in outcome.timings),
        ).row(),
        f"machine: {machine_start.describe()}, {load_end:.2f} at the end",
    ]
    heard = [t.heard_up_to_s - p.end_s for t in outcome.timings if t.heard_up_to_s is not None]
    if heard:
        early = sum(h < 0 for h in heard)
        lines.insert(
            -1,
            f"the segment each hint fired on held audio up to {min(heard) * 1000:+.0f} .. "
            f"{max(heard) * 1000:+.0f} ms around the end of '{p.phrase.split()[-1]}' ({early} of "
            f"{len(heard)} before it: the model heard the word from its start; that is a negative latency)",
        )
    for call_id in outcome.no_hint:
        lines.append(f"  no hint: {call_id}")
    for call_id in outcome.unmapped:
        lines.append(f"  unmapped (no partials on the leg, or their stamps disagree): {call_id}")
    return "\n".join(lines)


def to_json(said: SaidAt, outcome: HintOutcome, machine_start, load_end: float) -> dict[str, object]:
    return {
        "phrase": said.phrase.phrase,
        "said_start_s": said.phrase.start_s,
        "said_end_s": said.phrase.end_s,
        "quiet_after_s": said.quiet_after_s,
        "from_end_s": [t.from_end_s for t in outcome.timings],
        "from_start_s": [t.from_start_s for t in outcome.timings],
        "on_final": [t.hint.on_final for t in outcome.timings],
        "heard_up_to_s": [t.heard_up_to_s for t in outcome.timings],
        "matched_by": [t.hint.matched_by for t in outcome.timings],
        "no_hint": list(outcome.no_hint),
        "unmapped": list(outcome.unmapped),
        "max_base_spread_s": outcome.max_spread_s,
        "max_base_to_call_start_s": outcome.max_start_offset_s,
        "cpus": machine_start.cpus,
        "load_average_1m_start": machine_start.load_average_1m,
        "load_average_1m_end": load_end,
    }


async def measure(
    calls: list[ReplayCall], args: argparse.Namespace, environ: dict[str, str], partitions: int, said: SaidAt
) -> str:
    machine = procstat.machine()
    call_ids = [c.call_id for c in calls]
    # Our own services, so the topics are still there to read back once run_bench has stopped the stages.
    database_url = environ.get("CALLSCOPE_DATABASE_URL") or None
    async with services(environ.get("CALLSCOPE_KAFKA_BOOTSTRAP") or None, database_url, partitions) as svc:
        env = dict(
            environ, CALLSCOPE_KAFKA_BOOTSTRAP=svc.kafka_bootstrap, CALLSCOPE_DATABASE_URL=svc.database_url
        )
        since_s = time.time() - 1.0
        report = await run_bench_with(args, calls, env, partitions)
        load_end = procstat.machine().load_average_1m
        transcripts, assist = await read_call_events(svc.kafka_bootstrap, call_ids, since_s)
    outcome = hint_timings(
        call_ids, transcripts, assist, said.phrase, rule_id=RULE_ID, leg=LEG, speed=args.speed
    )
    if args.json:
        text = json.dumps(to_json(said, outcome, machine, load_end), indent=2) + "\n"
        await asyncio.to_thread(Path(args.json).write_text, text)
    return report.render() + "\n\n" + render(said, outcome, len(calls), machine, load_end)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.hint_latency",
        parents=[logging_options()],
        description=(
            "Latency of the demo's cancel hint: replays the bundled demo call through the whole pipeline\n"
            'and prints p50/p95/max of \'end of "account" said (Whisper word timestamps of the audio)\n'
            "-> first retention-cancel hint emitted'. See README, 'Measured'."
        ),
        epilog=SERVICES_ENV,
        formatter_class=formatter,
    )
    p.add_argument("--calls", type=int, default=4, help="replays of the demo call (default 4)")
    run_options(p, concurrency=2)
    return p


def main(argv: list[str] | None = None) -> int:
    from ingest.demo import DEMO_CALL_SCRIPT, DEMO_CALL_WAV

    args = parser().parse_args(argv)
    if args.speed <= 0 or args.concurrency < 1 or args.calls < 1:
        # Speed 0 (as fast as possible) has no pace to map the audio's timestamps to wall time with.
        print("bench.hint_latency: --speed must be > 0, --concurrency and --calls >= 1", file=sys.stderr)
        return 2
    environ = dict(os.environ)
    try:
        configure_logging_from(args, environ, "WARNING")
        partitions = shared_settings().partitions
    except (UsageError, SettingsError) as exc:
        print(f"bench.hint_latency: {exc}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        said = locate_phrase(DEMO_CALL_WAV, DEMO_CALL_SCRIPT)
    except (OSError, ValueError) as exc:
        print(f"bench.hint_latency: {exc}", file=sys.stderr)
        return 1
    calls = repeated(
        [ReplayCall.from_stereo(DEMO_CALL_WAV, agent_id="agent-bench", queue="bench")], args.calls
    )
    print(f"bench: {len(calls)} demo calls, {args.concurrency} at a time; starting ...", flush=True)
    return asyncio.run(_run(calls, args, environ, partitions, said))


async def _run(calls, args, environ, partitions, said) -> int:
    code, text = await run_guarded(lambda: measure(calls, args, environ, partitions, said))
    if text is not None:
        print(text, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
