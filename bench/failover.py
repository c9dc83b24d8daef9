"""Failover of transcription workers with the real engine: what a caller would notice.

Two `callscope transcribe` processes (embedded Whisper) on a Tansu broker of their own, two
calls of real speech replayed live, one on each partition. Scenarios:

- kill9: worker B is killed mid-call (`kill -9`); its call moves to worker A.
- rebalance: worker B joins mid-call and leaves (SIGTERM) again; A's own call should not notice.
- sigterm: like kill9 but B is stopped with SIGTERM (a planned restart).
- freeze: one worker; the broker is frozen (SIGSTOP) for 10 s mid-call; final latency before,
  just after and 15-35 s after the thaw.
- long: kill -9 of B during one call of `--minutes` (default 1, then 10): the call's first part
  is sent at once and transcribed by B at its own pace, then real time; B is killed once its
  finals are live. Catch-up should not grow with the call's length. Also printed: B's last
  committed offset and where in the call its frame lies (`committed_at_call_s`, beside
  `call_s_at_kill`): A reads the audio from there.
- rolling: the whole pipeline (two transcription workers, analyze, store, PostgreSQL); every stage
  is restarted in turn (SIGTERM, start, rejoin) during live calls: final latency before and
  during (to the transcript topic and to PostgreSQL), turns lost, turns stored twice.

Printed per run: detection (failure -> the survivor owns every partition), first new final of the
moved call after the failure, catch-up (failure -> first final of the moved call less than 1 s
behind the audio), finals re-sent (same id twice) for the moved call and for the survivor's own
call, the survivor's call's worst final latency during the scenario, and turns lost (a reference
turn no final overlaps); live again after the takeover (first partial or final < 1 s behind
the audio; the final-based catch-up also waits for the speaker to end a sentence); `--timeline`
prints the moved call's events after the failure. `--tree DIR` runs the workers from another
checkout (e.g. `git archive` of an older commit) to measure before/after with the same harness.

    python -m bench.failover --scenario kill9 [--tree /tmp/before] [--timeline]
    python -m bench.failover --scenario long --minutes 1 --minutes 10
    python -m bench.failover --scenario rolling
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ingest.replay import ReplayCall, replay_call
from ingest.wavsource import Recording
from pipeline.kafka import create_topics
from tests.calls import TestCall, Turn, standard_calls
from tests.e2e.failover import (
    Arrival,
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
FAILURE_AT_S = 14.0  # into the calls' audio
REJOIN_FOR_S = 10.0  # rebalance: how long B stays
FREEZE_S = 10.0  # freeze: how long the broker is stopped
READY_S = 180.0
LONG_LIVE_S = 30.0  # long: at least this much of the call at real time before the kill
LONG_TAIL_S = 20.0  # long: the call goes on this long after the moved call is live again
LONG_CATCH_UP_S = 300.0  # long: bound on worker B catching up with the fast-forwarded part


def _env(tree: Path | None) -> dict[str, str]:
    env = {"CALLSCOPE_TRANSCRIBE_IDLE_LEG_TIMEOUT_S": "60"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


class _Bench:
    """A broker of the run's own with the topics, a transcript tap, and the workers started so far
    (stopped on exit). `async with _Bench(name, tree) as bench:`."""

    def __init__(self, name: str, tree: Path | None) -> None:
        self.tree = tree
        self.logdir = Path(tempfile.mkdtemp(prefix=f"bench-failover-{name}-"))
        self.workers: list[Worker] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> _Bench:
        self.bootstrap, self.broker = self._stack.enter_context(frozen_capable_broker())
        await create_topics(self.bootstrap, PARTITIONS)
        self.tap = TranscriptTap(self.bootstrap, PARTITIONS)
        tapping = asyncio.create_task(self.tap.run(), name="bench-tap")
        self._stack.push_async_callback(_cancel, tapping)
        self._stack.push_async_callback(self._stop_workers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def start(self, name: str, *, every_partition: bool = False) -> Worker:
        """Start a worker and wait for its first assignment (of every partition if asked)."""
        if self.tree is None:
            worker = await start_worker(
                name, self.logdir, self.bootstrap, PARTITIONS, fake=False, env=_env(None)
            )
        else:
            cwd = os.getcwd()
            os.chdir(self.tree)  # `python -m deploy.cli` resolves from the working directory first
            try:
                worker = await start_worker(
                    name, self.logdir, self.bootstrap, PARTITIONS, fake=False, env=_env(self.tree)
                )
            finally:
                os.chdir(cwd)
        self.workers.append(worker)
        want = PARTITIONS if every_partition else 1
        await until(
            f"{name} ready",
            lambda: [p for p in assigned_partitions(worker) if len(p) >= want],
            READY_S,
            workers=self.workers,
        )
        return worker

    async def owns_every_partition(self, worker: Worker, after: int) -> float:
        """Wait until `worker` logs an assignment of every partition past its `after`-th; its time."""
        await until(
            f"{worker.name} owns every partition",
            lambda: (
                len(assigned_partitions(worker)) > after
                and len(assigned_partitions(worker)[-1]) == PARTITIONS
            ),
            60,
            workers=self.workers,
        )
        return worker.logged("partitions assigned")[-1]["ts"]

    async def _stop_workers(self) -> None:
        for worker in self.workers:
            if worker.proc.returncode is None:
                worker.signal(signal.SIGTERM)
                with contextlib.suppress(AssertionError):
                    await worker.wait(15)


async def _committed_audio_s(bootstrap: str, partition: int) -> tuple[int, float]:
    """The transcription group's committed offset on `partition` of the audio topic, and where in
    its call the record there lies (s of audio; -1 when it is not a frame): where the next owner
    starts reading."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from ingest.events import AudioFrame, parse_audio_record
    from pipeline.topics import TOPICS
    from transcribe.config import TranscribeConfig

    tp = TopicPartition(TOPICS.audio, partition)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        group = TranscribeConfig.model_fields["group_id"].default
        offset = (await admin.list_consumer_group_offsets(group, partitions=[tp]))[tp].offset
    finally:
        await admin.close()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign([tp])
        reader.seek(tp, offset)
        batch = (await reader.getmany(tp, timeout_ms=2_000, max_records=1)).get(tp, [])
    finally:
        await reader.stop()
    event = parse_audio_record(batch[0].value) if batch else None
    if isinstance(event, AudioFrame):
        return offset, round(event.offset_samples / event.sample_rate_hz, 1)
    return offset, -1.0


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _behind(seen: CallSeen, arrival: Arrival, to_wall: float) -> float:
    """How far behind its audio an event was read (s): arrival - (call start + its end)."""
    assert seen.started_at is not None
    return (arrival.at + to_wall) - (seen.started_at + arrival.final.end_ms / 1000)


def _moved_figures(
    seen: CallSeen, failed_at: float, owned_at: float, to_wall: float
) -> dict[str, float | int]:
    """The moved call after the failure (monotonic `failed_at`, wall `owned_at`): first new final,
    catch-up (first final < 1 s behind; it waits for the speaker to end a sentence), live again
    (first partial or final < 1 s behind: decoding is at the live audio), re-sent finals."""
    out: dict[str, float | int] = {}
    before = {a.final.segment_id for a in seen.finals if a.at < failed_at}
    new = [a for a in seen.finals if a.at >= failed_at and a.final.segment_id not in before]
    out["moved_first_new_final_s"] = round(new[0].at - failed_at, 1) if new else -1
    caught = [a for a in seen.finals if a.at >= failed_at and _behind(seen, a, to_wall) < 1.0]
    out["moved_catch_up_s"] = round(caught[0].at - failed_at, 1) if caught else -1
    events = sorted(seen.finals + seen.partials, key=lambda a: a.at)
    live = [a for a in events if a.at + to_wall >= owned_at and _behind(seen, a, to_wall) < 1.0]
    out["moved_live_after_takeover_s"] = round(live[0].at + to_wall - owned_at, 1) if live else -1
    if caught:
        out["moved_catch_up_after_takeover_s"] = round(caught[0].at + to_wall - owned_at, 1)
    out["moved_resent"] = seen.resent()
    return out


def _lost(turns: Iterable[Turn], seen: CallSeen) -> int:
    """Reference turns no final overlaps."""
    spans = [(a.final.leg, a.final.start_ms, a.final.end_ms) for a in seen.finals]
    return sum(
        not any(leg == t.leg and s < t.end_ms and e > t.start_ms for leg, s, e in spans) for t in turns
    )


def _print_timeline(seen: CallSeen, failed_at: float, owned_at: float, to_wall: float) -> None:
    """The moved call's events from the failure on: when read (s after the failure), kind, leg,
    audio span, latency behind the audio, and the worker's own read -> emit time."""
    print(f"takeover at +{owned_at - failed_at:.2f} s")
    for a in sorted(seen.finals + seen.partials, key=lambda a: a.at):
        if a.at < failed_at:
            continue
        seg, times = a.final, a.final.times
        span = f"{seg.start_ms / 1000:6.1f}-{seg.end_ms / 1000:6.1f}"
        read_to_emit = times.emitted_at - times.audio_received_at
        print(
            f"+{a.at - failed_at:6.2f} {seg.type:15} {seg.leg:8} {span}"
            f" behind={_behind(seen, a, to_wall):5.2f} read->emit={read_to_emit:5.2f}"
        )


async def run(scenario: str, tree: Path | None, timeline: bool = False) -> dict[str, float | int | str]:
    calls = standard_calls()
    async with _Bench(scenario, tree) as bench:
        tap = bench.tap
        a = await bench.start("a", every_partition=True)
        b = None
        if scenario != "rebalance":
            b = await bench.start("b")
            await asyncio.sleep(3)  # let the group settle after the rebalance b caused
        ids = [call_on_partition(p, PARTITIONS, f"bench-{scenario}-{os.getpid()}") for p in range(PARTITIONS)]
        replays = [
            asyncio.create_task(replay_call(bench.bootstrap, call.replay(call_id), speed=1.0))
            for call, call_id in zip(calls, ids, strict=True)
        ]
        # FAILURE_AT_S into the calls' own audio (under load a replay starts seconds after its
        # task: speech synthesis, encoding), each with a final out already.
        await until(
            f"{FAILURE_AT_S} s into every call",
            lambda: all(
                tap.calls[c].started_at is not None
                and time.time() - tap.calls[c].started_at >= FAILURE_AT_S
                and tap.calls[c].finals
                for c in ids
            ),
            READY_S,
            workers=bench.workers,
        )
        a_assignments = len(assigned_partitions(a))
        if b is None:  # rebalance: B joins mid-call and leaves again
            b = await bench.start("b")
            await asyncio.sleep(REJOIN_FOR_S)
            failed_at = b.signal(signal.SIGTERM)
        else:
            failed_at = b.signal(signal.SIGKILL if scenario == "kill9" else signal.SIGTERM)
        b_parts = set(next(p for p in reversed(assigned_partitions(b)) if p))
        await b.wait(30)
        owned_at = await bench.owns_every_partition(a, a_assignments)
        await asyncio.gather(*replays)
        await until("calls ended", lambda: all(tap.calls[c].ended for c in ids), 120, workers=bench.workers)

    to_wall = time.time() - time.monotonic()
    moved = [ids[p] for p in b_parts]
    kept = [c for c in ids if c not in moved]
    out: dict[str, float | int | str] = {"scenario": scenario, "tree": str(tree or "current")}
    out["detection_s"] = round(owned_at - (failed_at + to_wall), 1)
    for call_id in moved:
        out.update(_moved_figures(tap.calls[call_id], failed_at, owned_at, to_wall))
        if timeline:
            _print_timeline(tap.calls[call_id], failed_at, owned_at - to_wall, to_wall)
    for call_id in kept:
        seen = tap.calls[call_id]
        out["kept_resent"] = seen.resent()
        lat = [_behind(seen, a, to_wall) for a in seen.finals if a.at >= failed_at - 15]
        out["kept_worst_latency_s"] = round(max(lat), 1) if lat else -1
        out["kept_median_latency_s"] = round(statistics.median(lat), 1) if lat else -1
    out["turns_lost"] = sum(
        _lost(call.turns, tap.calls[call_id]) for call, call_id in zip(calls, ids, strict=True)
    )
    out["load_avg_1m"] = round(os.getloadavg()[0], 1)
    out["logs"] = str(bench.logdir)
    return out


class _HeadStart:
    """A clock whose first reading lies `head_s` in the past. replay_call takes its start from the
    first reading, so the call's first `head_s` of audio go out at once (as if spooled: captured
    then, sent now) and the rest at real time."""

    def __init__(self, clock: Callable[[], float], head_s: float) -> None:
        self._clock = clock
        self._head_s: float | None = head_s

    def __call__(self) -> float:
        head, self._head_s = self._head_s or 0.0, None
        return self._clock() - head


def _long_call(base: TestCall, seconds: float) -> tuple[Recording, list[Turn]]:
    """`base` said again and again for at least `seconds`; its turns, shifted to each repeat."""
    repeats = math.ceil(seconds / base.duration_s)
    rate = base.recording.sample_rate_hz
    legs = {leg: np.tile(samples, repeats) for leg, samples in base.recording.legs.items()}
    length_ms = round(max(len(s) for s in base.recording.legs.values()) * 1000 / rate)
    turns = [
        dataclasses.replace(t, start_ms=t.start_ms + i * length_ms, end_ms=t.end_ms + i * length_ms)
        for i in range(repeats)
        for t in base.turns
    ]
    return Recording(legs=legs, sample_rate_hz=rate), turns


async def run_long(minutes: float, tree: Path | None, timeline: bool = False) -> dict[str, float | int | str]:
    """kill -9 of worker B during a call `minutes` long. The call's first part is sent at once
    (fast-forwarded, captured `head_s` ago) and transcribed by B at its own pace; once B's finals
    are live again (and LONG_LIVE_S of real time passed), B is killed. What A's catch-up costs
    should not depend on the call's length: the frames before the resume point are read, not
    decoded."""
    head_s = max(0.0, minutes * 60 - LONG_LIVE_S)
    recording, turns = _long_call(standard_calls()[0], head_s + LONG_CATCH_UP_S + 120)
    async with _Bench(f"long{minutes:g}", tree) as bench:
        tap = bench.tap
        a = await bench.start("a", every_partition=True)
        b = await bench.start("b")
        await asyncio.sleep(3)  # let the group settle after the rebalance b caused
        b_part = next(p for p in reversed(assigned_partitions(b)) if p)[0]
        call_id = call_on_partition(b_part, PARTITIONS, f"bench-long-{os.getpid()}")
        stop = asyncio.Event()
        replay = asyncio.create_task(
            replay_call(
                bench.bootstrap,
                ReplayCall(recording=recording, call_id=call_id, agent_id="agent-7"),
                speed=1.0,
                stop=stop,
                monotonic=_HeadStart(time.monotonic, head_s),
                wall=_HeadStart(time.time, head_s),
            ),
            name="bench-long-replay",
        )
        to_wall = time.time() - time.monotonic()
        seen = tap.calls[call_id]

        def b_live() -> bool:
            if seen.started_at is None or time.time() - seen.started_at < head_s + LONG_LIVE_S:
                return False
            recent = [x for x in seen.finals if x.final.end_ms / 1000 >= head_s]
            return bool(recent) and _behind(seen, recent[-1], to_wall) < 1.0

        await until("b live on the long call", b_live, LONG_CATCH_UP_S, workers=bench.workers)
        a_assignments = len(assigned_partitions(a))
        failed_at = b.signal(signal.SIGKILL)
        assert seen.started_at is not None
        call_s_at_kill = time.time() - seen.started_at
        finals_before = len(seen.finals)
        await b.wait(30)
        committed = await _committed_audio_s(bench.bootstrap, b_part)  # b's last commit: a reads from there
        owned_at = await bench.owns_every_partition(a, a_assignments)

        def a_live() -> bool:
            events = seen.finals + seen.partials
            return any(x.at + to_wall >= owned_at and _behind(seen, x, to_wall) < 1.0 for x in events)

        await until("a live on the moved call", a_live, 60, workers=bench.workers)
        await asyncio.sleep(LONG_TAIL_S)
        stop.set()
        await replay
        await until("call ended", lambda: seen.ended, 120, workers=bench.workers)

    spoken_s = time.time() - seen.started_at - LONG_TAIL_S  # turns surely final by the stop
    out: dict[str, float | int | str] = {"scenario": "long", "tree": str(tree or "current")}
    out["call_minutes_at_kill"] = round(call_s_at_kill / 60, 1)
    out["finals_before_kill"] = finals_before
    out["committed_offset"], out["committed_at_call_s"] = committed
    out["call_s_at_kill"] = round(call_s_at_kill, 1)
    out["detection_s"] = round(owned_at - (failed_at + to_wall), 1)
    out.update(_moved_figures(seen, failed_at, owned_at, to_wall))
    resumed = [line for line in a.lines() if line.get("msg") == "leg decoding resumes after its finals"]
    out["frames_skipped"] = sum(line.get("frames_skipped", 0) for line in resumed)
    read = a.logged("finals read for resume")
    out["resume_read_s"] = read[-1].get("read_s", -1) if read else -1
    if resumed:
        out["takeover_to_decoding_s"] = round(max(line["ts"] for line in resumed) - owned_at, 2)
    out["turns_lost"] = _lost([t for t in turns if t.end_ms / 1000 < spoken_s], seen)
    out["load_avg_1m"] = round(os.getloadavg()[0], 1)
    out["logs"] = str(bench.logdir)
    if timeline:
        _print_timeline(seen, failed_at, owned_at - to_wall, to_wall)
    return out


async def run_freeze(tree: Path | None) -> dict[str, float | int | str]:
    """The broker frozen (SIGSTOP) for FREEZE_S mid-call with one worker: final latency before the
    freeze, just after it and 15-35 s after it (the issue saw 2-4x slower for ~33 s)."""
    calls = standard_calls()
    async with _Bench("freeze", tree) as bench:
        tap = bench.tap
        a = await bench.start("a", every_partition=True)
        ids = [call_on_partition(p, PARTITIONS, f"bench-freeze-{os.getpid()}") for p in range(PARTITIONS)]
        # Each call said twice over (66 s, 88 s): speech goes on 35 s after the thaw.
        replays = [
            asyncio.create_task(
                replay_call(
                    bench.bootstrap,
                    ReplayCall(recording=_long_call(call, 2 * call.duration_s)[0], call_id=call_id),
                    speed=1.0,
                )
            )
            for call, call_id in zip(calls, ids, strict=True)
        ]
        try:
            # Frozen once each call has a few finals (a baseline): under load the replays take
            # seconds to start (speech synthesis, encoding), so a fixed delay can freeze before any.
            await until(
                "a baseline of finals",
                lambda: all(len(tap.calls[c].finals) >= 3 for c in ids),
                READY_S,
                workers=bench.workers,
            )
            bench.broker.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            await asyncio.sleep(FREEZE_S)
        finally:
            bench.broker.send_signal(signal.SIGCONT)
        thawed_at = time.monotonic()
        await asyncio.gather(*replays)
        await until("calls ended", lambda: all(tap.calls[c].ended for c in ids), 120, workers=bench.workers)
    to_wall = time.time() - time.monotonic()
    windows: dict[str, list[float]] = {"before": [], "thaw_0_15s": [], "thaw_15_35s": []}
    for call_id in ids:
        seen = tap.calls[call_id]
        assert seen.started_at is not None
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
    out["logs"] = str(bench.logdir)
    return out


async def run_rolling() -> dict[str, float | int | str]:
    """Every stage restarted in turn (SIGTERM, start, rejoin) while real-speech calls go on, on the
    whole pipeline (tests/e2e/rolling.py): final latency before and during, what was lost or
    stored twice."""
    from tests.e2e.rolling import delays, rolling_restart, said_twice, turns_lost
    from tests.e2e.running import running_pipeline

    os.environ["CALLSCOPE_LOG_FORMAT"] = "json"  # the harness reads the workers' assignments
    logdir = Path(tempfile.mkdtemp(prefix="bench-failover-rolling-"))
    async with running_pipeline(logdir) as pipeline:
        run = await rolling_restart(
            pipeline, standard_calls(), prefix=f"bench-rolling-{os.getpid()}", first_restart_after_s=15.0
        )
        summaries = {call_id: await pipeline.wait_until_stored(call_id) for call_id in run.calls}
        out: dict[str, float | int | str] = {"scenario": "rolling", "calls": len(run.calls)}
        out.update(delays(pipeline, run, summaries))
        out["exit_codes"] = ",".join(f"{r.name}:{r.exit_code}" for r in run.restarts)
        out["turns_lost"] = sum(turns_lost(run.calls[c], s) for c, s in summaries.items())
        out["stored_twice"] = sum(said_twice(s) for s in summaries.values())
        out["finals_not_stored"] = sum(
            len(set(pipeline.tap.calls[c].finals) - {seg.segment_id for seg in s.segments})
            for c, s in summaries.items()
        )
    out["load_avg_1m"] = round(os.getloadavg()[0], 1)
    out["logs"] = str(logdir)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario", choices=("kill9", "rebalance", "sigterm", "freeze", "long", "rolling"), default="kill9"
    )
    parser.add_argument(
        "--minutes", type=float, action="append", help="long: the call's length at the kill (repeatable)"
    )
    parser.add_argument("--tree", type=Path, help="run the workers from this checkout (default: this one)")
    parser.add_argument(
        "--timeline", action="store_true", help="print the moved call's events after the failure"
    )
    args = parser.parse_args()
    if args.scenario == "rolling":
        print(" ".join(f"{k}={v}" for k, v in asyncio.run(run_rolling()).items()))
        return
    if args.scenario == "long":
        for minutes in args.minutes or [1.0, 10.0]:
            result = asyncio.run(run_long(minutes, args.tree, args.timeline))
            print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        return
    result = asyncio.run(
        run_freeze(args.tree) if args.scenario == "freeze" else run(args.scenario, args.tree, args.timeline)
    )
    print(" ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
