"""Failover of transcription workers with the real engine: what a caller would notice.

Two `callscope transcribe` processes (embedded Whisper) on a Tansu broker of their own, two
calls of real speech replayed live, one on each partition. Scenarios:

- kill9: worker B is killed mid-call (`kill -9`); its call moves to worker A.
- rebalance: worker B joins mid-call and leaves (SIGTERM) again; A's own call should not notice.
- sigterm: like kill9 but B is stopped with SIGTERM (a planned restart).
- freeze: one worker; the broker is frozen (SIGSTOP) for 10 s mid-call; final latency before,
  just after and 15-35 s after the thaw.

Printed per run: detection (failure -> the survivor owns every partition), first new final of the
moved call after the failure, catch-up (failure -> first final of the moved call less than 1 s
behind the audio), finals re-sent (same id twice) for the moved call and for the survivor's own
call, the survivor's call's worst final latency during the scenario, and turns lost (a reference
turn no final overlaps). `--tree DIR` runs the workers from another checkout (e.g. `git archive`
of an older commit) to measure before/after with the same harness.

    python -m bench.failover --scenario kill9 [--tree /tmp/before]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from ingest.replay import replay_call
from pipeline.kafka import create_topics
from tests.calls import standard_calls
from tests.e2e.failover import (
    CallSeen,
    TranscriptTap,
    Worker,
    assigned_partitions,
    call_on_partition,
    frozen_capable_broker,
    start_worker,
    until,
)

PARTITIONS = 2
FAILURE_AT_S = 14.0  # into the calls
REJOIN_FOR_S = 10.0  # rebalance: how long B stays
FREEZE_S = 10.0  # freeze: how long the broker is stopped
READY_S = 180.0


def _env(tree: Path | None) -> dict[str, str]:
    env = {"CALLSCOPE_TRANSCRIBE_IDLE_LEG_TIMEOUT_S": "60"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


async def _start(name: str, logdir: Path, bootstrap: str, tree: Path | None) -> Worker:
    if tree is None:
        return await start_worker(name, logdir, bootstrap, PARTITIONS, fake=False, env=_env(tree))
    cwd = os.getcwd()
    os.chdir(tree)  # `python -m deploy.cli` resolves from the working directory first
    try:
        return await start_worker(name, logdir, bootstrap, PARTITIONS, fake=False, env=_env(tree))
    finally:
        os.chdir(cwd)


def _print_timeline(seen: CallSeen, failed_at: float, owned_at: float, to_wall: float) -> None:
    """The moved call's events from the failure on: when read (s after the failure), kind, leg,
    audio span, latency behind the audio, and the worker's own read -> emit time."""
    print(f"takeover at +{owned_at - failed_at:.2f} s")
    for a in sorted(seen.finals + seen.partials, key=lambda a: a.at):
        if a.at < failed_at:
            continue
        seg, times = a.final, a.final.times
        behind = (a.at + to_wall) - (seen.started_at + seg.end_ms / 1000)
        span = f"{seg.start_ms / 1000:6.1f}-{seg.end_ms / 1000:6.1f}"
        read_to_emit = times.emitted_at - times.audio_received_at
        print(
            f"+{a.at - failed_at:6.2f} {seg.type:15} {seg.leg:8} {span}"
            f" behind={behind:5.2f} read->emit={read_to_emit:5.2f}"
        )


async def run(scenario: str, tree: Path | None, timeline: bool = False) -> dict[str, float | int | str]:
    calls = standard_calls()
    logdir = Path(tempfile.mkdtemp(prefix=f"bench-failover-{scenario}-"))
    with frozen_capable_broker() as (bootstrap, _):
        await create_topics(bootstrap, PARTITIONS)
        tap = TranscriptTap(bootstrap, PARTITIONS)
        tapping = asyncio.create_task(tap.run(), name="bench-tap")
        workers: list[Worker] = []
        try:
            a = await _start("a", logdir, bootstrap, tree)
            workers.append(a)
            await until(
                "a ready",
                lambda: [p for p in assigned_partitions(a) if len(p) == PARTITIONS],
                READY_S,
                workers=workers,
            )
            b = await _start("b", logdir, bootstrap, tree) if scenario != "rebalance" else None
            if b is not None:
                workers.append(b)
                await until(
                    "b ready", lambda: [p for p in assigned_partitions(b) if p], READY_S, workers=workers
                )
                await asyncio.sleep(3)  # let the group settle after the rebalance b caused
            ids = [
                call_on_partition(p, PARTITIONS, f"bench-{scenario}-{os.getpid()}") for p in range(PARTITIONS)
            ]
            replays = [
                asyncio.create_task(replay_call(bootstrap, call.replay(call_id), speed=1.0))
                for call, call_id in zip(calls, ids, strict=True)
            ]
            await asyncio.sleep(FAILURE_AT_S)
            a_assignments = len(assigned_partitions(a))
            if scenario == "rebalance":
                b = await _start("b", logdir, bootstrap, tree)
                workers.append(b)
                await until(
                    "b joined", lambda: [p for p in assigned_partitions(b) if p], READY_S, workers=workers
                )
                await asyncio.sleep(REJOIN_FOR_S)
                failed_at = b.signal(signal.SIGTERM)
            else:
                failed_at = b.signal(signal.SIGKILL if scenario == "kill9" else signal.SIGTERM)
            b_parts = set(next(p for p in reversed(assigned_partitions(b)) if p))
            await b.wait(30)
            await until(
                "a owns every partition",
                lambda: (
                    len(assigned_partitions(a)) > a_assignments
                    and len(assigned_partitions(a)[-1]) == PARTITIONS
                ),
                60,
                workers=workers,
            )
            owned_at = a.logged("partitions assigned")[-1]["ts"]
            await asyncio.gather(*replays)
            await until("calls ended", lambda: all(tap.calls[c].ended for c in ids), 120, workers=workers)
        finally:
            for worker in workers:
                if worker.proc.returncode is None:
                    worker.signal(signal.SIGTERM)
                    with contextlib.suppress(AssertionError):
                        await worker.wait(15)
            tapping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tapping

    to_wall = time.time() - time.monotonic()
    moved = [ids[p] for p in b_parts]
    kept = [c for c in ids if c not in moved]
    out: dict[str, float | int | str] = {"scenario": scenario, "tree": str(tree or "current")}
    out["detection_s"] = round(owned_at - (failed_at + to_wall), 1)
    for call_id in moved:
        seen = tap.calls[call_id]
        before = {a.final.segment_id for a in seen.finals if a.at < failed_at}
        new = [a for a in seen.finals if a.at >= failed_at and a.final.segment_id not in before]
        out["moved_first_new_final_s"] = round(new[0].at - failed_at, 1) if new else -1
        caught = [
            a
            for a in seen.finals
            if a.at >= failed_at and (a.at + to_wall) - (seen.started_at + a.final.end_ms / 1000) < 1.0
        ]
        out["moved_catch_up_s"] = round(caught[0].at - failed_at, 1) if caught else -1
        # Live again: the first event, partial or final, less than 1 s behind its audio (a final
        # also waits for its speaker to finish the sentence; a partial shows decoding is live).
        live = [
            a
            for a in sorted(seen.finals + seen.partials, key=lambda a: a.at)
            if a.at + to_wall >= owned_at
            and (a.at + to_wall) - (seen.started_at + a.final.end_ms / 1000) < 1.0
        ]
        out["moved_live_after_takeover_s"] = round(live[0].at + to_wall - owned_at, 1) if live else -1
        if caught:
            out["moved_catch_up_after_takeover_s"] = round(caught[0].at + to_wall - owned_at, 1)
        out["moved_resent"] = seen.resent()
        if timeline:
            _print_timeline(seen, failed_at, owned_at - to_wall, to_wall)
    for call_id in kept:
        seen = tap.calls[call_id]
        out["kept_resent"] = seen.resent()
        lat = [
            (a.at + to_wall) - (seen.started_at + a.final.end_ms / 1000)
            for a in seen.finals
            if a.at >= failed_at - 15
        ]
        out["kept_worst_latency_s"] = round(max(lat), 1) if lat else -1
        out["kept_median_latency_s"] = round(statistics.median(lat), 1) if lat else -1
    lost = 0
    for call, call_id in zip(calls, ids, strict=True):
        spans = [(a.final.leg, a.final.start_ms, a.final.end_ms) for a in tap.calls[call_id].finals]
        lost += sum(
            not any(leg == t.leg and s < t.end_ms and e > t.start_ms for leg, s, e in spans)
            for t in call.turns
        )
    out["turns_lost"] = lost
    out["load_avg_1m"] = round(os.getloadavg()[0], 1)
    out["logs"] = str(logdir)
    return out


async def run_freeze(tree: Path | None) -> dict[str, float | int | str]:
    """The broker frozen (SIGSTOP) for FREEZE_S mid-call with one worker: final latency before the
    freeze, just after it and 15-35 s after it (the issue saw 2-4x slower for ~33 s)."""
    calls = standard_calls()
    logdir = Path(tempfile.mkdtemp(prefix="bench-failover-freeze-"))
    with frozen_capable_broker() as (bootstrap, broker):
        await create_topics(bootstrap, PARTITIONS)
        tap = TranscriptTap(bootstrap, PARTITIONS)
        tapping = asyncio.create_task(tap.run(), name="bench-tap")
        workers: list[Worker] = []
        try:
            a = await _start("a", logdir, bootstrap, tree)
            workers.append(a)
            await until(
                "a ready",
                lambda: [p for p in assigned_partitions(a) if len(p) == PARTITIONS],
                READY_S,
                workers=workers,
            )
            ids = [call_on_partition(p, PARTITIONS, f"bench-freeze-{os.getpid()}") for p in range(PARTITIONS)]
            replays = [
                asyncio.create_task(replay_call(bootstrap, call.replay(call_id), speed=1.0))
                for call, call_id in zip(calls, ids, strict=True)
            ]
            await asyncio.sleep(FAILURE_AT_S)
            broker.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            await asyncio.sleep(FREEZE_S)
            broker.send_signal(signal.SIGCONT)
            thawed_at = time.monotonic()
            await asyncio.gather(*replays)
            await until("calls ended", lambda: all(tap.calls[c].ended for c in ids), 120, workers=workers)
        finally:
            broker.send_signal(signal.SIGCONT)
            for worker in workers:
                if worker.proc.returncode is None:
                    worker.signal(signal.SIGTERM)
                    with contextlib.suppress(AssertionError):
                        await worker.wait(15)
            tapping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tapping
    to_wall = time.time() - time.monotonic()
    windows = {"before": [], "thaw_0_15s": [], "thaw_15_35s": []}
    for call_id in ids:
        seen = tap.calls[call_id]
        for arrival in seen.finals:
            spoken_end = seen.started_at + arrival.final.end_ms / 1000 - to_wall  # monotonic
            latency = arrival.at - spoken_end
            if spoken_end < frozen_at:
                if arrival.at < frozen_at:
                    windows["before"].append(latency)
            elif spoken_end >= thawed_at:
                after = spoken_end - thawed_at
                key = "thaw_0_15s" if after < 15 else "thaw_15_35s" if after < 35 else None
                if key:
                    windows[key].append(latency)
    out: dict[str, float | int | str] = {
        "scenario": "freeze",
        "tree": str(tree or "current"),
        "freeze_s": FREEZE_S,
    }
    for key, values in windows.items():
        out[f"{key}_median_latency_s"] = round(statistics.median(values), 2) if values else -1
        out[f"{key}_finals"] = len(values)
    out["resent"] = sum(tap.calls[c].resent() for c in ids)
    out["broker_lines"] = len(a.logged("broker not answering")) + len(a.logged("broker answering again"))
    out["load_avg_1m"] = round(os.getloadavg()[0], 1)
    out["logs"] = str(logdir)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=("kill9", "rebalance", "sigterm", "freeze"), default="kill9")
    parser.add_argument("--tree", type=Path, help="run the workers from this checkout (default: this one)")
    parser.add_argument(
        "--timeline", action="store_true", help="print the moved call's events after the failure"
    )
    args = parser.parse_args()
    result = asyncio.run(
        run_freeze(args.tree) if args.scenario == "freeze" else run(args.scenario, args.tree, args.timeline)
    )
    print(" ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
