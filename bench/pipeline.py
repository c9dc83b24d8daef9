"""Benchmark of the whole pipeline: `python -m bench.pipeline [STEREO_WAV ...] [options]`.

Replays calls through the pipeline and measures it. Starts the broker and database (embedded
unless CALLSCOPE_KAFKA_BOOTSTRAP / CALLSCOPE_DATABASE_URL are set) and the three stages as
subprocesses, waits until each stage has joined its consumer group, replays the calls
(`concurrency` at a time), waits until PostgreSQL holds every call ended with its finals and
their sentiment, then reads back what the pipeline produced: latency per stage from the stamps
the events carry, and the CPU time each process spent per second of call audio. Nothing is
asserted against a timer: it reports what it measured. Every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bench import procstat
from bench.collect import read_call_events, stored_segments, wait_until_complete
from bench.latency import stage_latencies
from bench.report import BenchReport, EventCounts
from deploy.cli_common import (
    SERVICES_ENV,
    UsageError,
    configure_logging_from,
    formatter,
    logging_options,
    shared_settings,
)
from deploy.runtime import services
from deploy.stages import StageFailed, StageProcesses, cancel_on, stage_env, wait_until_ready
from ingest.events import Codec
from ingest.replay import DEFAULT_FORMAT, ReplayCall, replay_call
from ingest.wavsource import OutputFormat
from pipeline.settings import SettingsError
from pipeline.stage import run_until_signalled

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)
T = TypeVar("T")
BENCH_PROCESS = "bench process (ingest replay)"
BROKER = "broker (embedded Tansu)"


class BenchFailed(StageFailed):
    """The run did not complete; the message says which step and where the stage logs are."""


def default_timeout_s(calls: list[ReplayCall], speed: float, concurrency: int) -> float:
    """Start-up, plus the replay at its pace, plus processing at a few times real time."""
    audio_s = sum(c.recording.duration_s for c in calls)
    replay_s = audio_s / concurrency / speed if speed > 0 else 0.0
    return 180.0 + replay_s + 3.0 * audio_s / concurrency


async def run_bench(
    calls: list[ReplayCall],
    *,
    speed: float = 1.0,
    fmt: OutputFormat = DEFAULT_FORMAT,
    concurrency: int = 1,
    partitions: int = 8,
    environ: dict[str, str],
    timeout_s: float | None = None,
    logdir: Path | None = None,
    read_stored: Callable[[AsyncEngine, list[str]], Awaitable[None]] | None = None,
) -> BenchReport:
    """One benchmark run over `calls` (unique call ids); raises BenchFailed on a dead stage or timeout.

    `read_stored`, when given, is called with the database engine and the call ids once PostgreSQL
    holds every call (bench.fidelity --pipeline reads the stored finals' text with it).
    """
    call_ids = [c.call_id for c in calls]
    if not calls or len(set(call_ids)) != len(call_ids):
        raise ValueError("the benchmark needs at least one call and unique call ids")
    if speed < 0 or concurrency < 1:
        raise ValueError("speed must be >= 0 and concurrency >= 1")
    deadline = time.monotonic() + (timeout_s or default_timeout_s(calls, speed, concurrency))
    logdir = logdir or Path(tempfile.mkdtemp(prefix="callscope-bench-"))
    database_url = environ.get("CALLSCOPE_DATABASE_URL") or None
    if database_url and database_url.startswith("postgresql://"):
        database_url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    machine = procstat.machine()
    async with services(environ.get("CALLSCOPE_KAFKA_BOOTSTRAP") or None, database_url, partitions) as svc:
        stages = StageProcesses(logdir, stage_env(environ, svc.kafka_bootstrap, svc.database_url, partitions))
        try:
            await stages.start()
            watcher = asyncio.create_task(stages.watch(), name="bench-stage-watch")
            try:
                return await _measure(
                    calls,
                    speed,
                    fmt,
                    concurrency,
                    partitions,
                    svc,
                    stages,
                    watcher,
                    deadline,
                    machine,
                    read_stored,
                )
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        finally:
            killed = await stages.stop()
            if killed:
                log.warning("stages killed after the stop grace", extra={"stages": killed})


async def _measure(
    calls, speed, fmt, concurrency, partitions, svc, stages, watcher, deadline, machine, read_stored=None
) -> BenchReport:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def step(what: str, work: Awaitable[T]) -> T:
        """Run one step, failing fast when a stage dies or the run's deadline passes."""
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait(
                {task, watcher},
                timeout=max(0.1, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:  # interrupted: the step's work stops with it, not after
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        if task not in done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if watcher in done:
                watcher.result()  # raises StageFailed naming the stage and its log
            raise BenchFailed(f"timed out {what}; stage logs in {stages.stages[0].log_path.parent}")
        return task.result()

    await step("waiting for the stages to join their groups", wait_until_ready(svc.kafka_bootstrap, 600))
    call_ids = [c.call_id for c in calls]
    cpu = _cpu_sampler({s.name: s.proc.pid for s in stages.stages})
    since_s = time.time() - 1.0
    before, started = cpu(), time.monotonic()
    await step("replaying the calls", _replay_all(svc.kafka_bootstrap, calls, speed, fmt, concurrency))
    engine = create_async_engine(svc.database_url)
    try:
        await step("waiting for PostgreSQL to hold every call", wait_until_complete(engine, call_ids))
        after, wall_s = cpu(), time.monotonic() - started
        stored = await step("reading the stored segments", stored_segments(engine, call_ids))
        if read_stored is not None:
            await step("reading the stored finals", read_stored(engine, call_ids))
    finally:
        await engine.dispose()
    transcripts, assist = await step(
        "reading the transcript and assist topics", read_call_events(svc.kafka_bootstrap, call_ids, since_s)
    )
    return BenchReport(
        calls=len(calls),
        call_audio_s=sum(c.recording.duration_s for c in calls),
        wall_s=wall_s,
        speed=speed,
        concurrency=concurrency,
        codec=fmt.codec.name.lower(),
        sample_rate_hz=fmt.sample_rate_hz,
        partitions=partitions,
        series=tuple(stage_latencies(transcripts, assist, stored)),
        cpu_s={name: after[name] - before[name] for name in before if name in after},
        counts=EventCounts.of(transcripts, assist, len(stored)),
        machine=machine,
        notes=(
            f"load average was {procstat.machine().load_average_1m:.2f} at the end",
            f"stage logs: {stages.stages[0].log_path.parent}",
        ),
    )


def _cpu_sampler(stage_pids: dict[str, int]) -> Callable[[], dict[str, float]]:
    """Snapshot of CPU seconds: each stage, the embedded broker (when it is ours), this process."""
    pids = dict(stage_pids)
    for pid in procstat.child_pids_named(os.getpid(), "tansu")[:1]:
        pids[BROKER] = pid

    def sample() -> dict[str, float]:
        out = {name: s for name, pid in pids.items() if (s := procstat.process_cpu_seconds(pid)) is not None}
        out[BENCH_PROCESS] = time.process_time()
        return out

    return sample


async def _replay_all(bootstrap, calls, speed, fmt, concurrency) -> None:
    from pipeline.kafka import make_producer

    producer = make_producer(bootstrap, client_id="callscope-bench-replay", linger_ms=2)
    await producer.start()
    slots = asyncio.Semaphore(concurrency)

    async def one(call: ReplayCall) -> None:
        async with slots:
            await replay_call(bootstrap, call, speed, fmt=fmt, producer=producer)

    try:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(one(call), name=f"bench-replay-{call.call_id}")
    finally:
        await producer.stop()


# --- Command line ---


def repeated(calls: list[ReplayCall], times: int, run_id: str | None = None) -> list[ReplayCall]:
    """Each call `times` times, each copy with its own call id."""
    run_id = run_id or uuid.uuid4().hex[:8]
    return [
        dataclasses.replace(call, call_id=f"bench-{run_id}-{i}-{n}")
        for n in range(times)
        for i, call in enumerate(calls)
    ]


def run_and_print(
    calls: list[ReplayCall], args: argparse.Namespace, environ: dict[str, str], partitions: int
) -> int:
    """Shared by `python -m bench.pipeline` and `bench.real_speech`: run, print the report, write JSON."""
    if args.speed < 0 or args.concurrency < 1 or args.calls < 1:
        print("bench: --speed must be >= 0, --concurrency and --calls >= 1", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

    async def measure() -> BenchReport:
        return await run_bench_with(args, calls, environ, partitions)

    async def main() -> int:
        audio_s = sum(c.recording.duration_s for c in calls)
        print(f"bench: {len(calls)} calls, {audio_s:.0f} s of call audio; starting ...", flush=True)
        code, report = await run_guarded(measure)
        if report is None:
            return code
        print(report.render(), flush=True)
        if args.json:
            text = json.dumps(report.to_json(), indent=2) + "\n"
            await asyncio.to_thread(Path(args.json).write_text, text)
        return 0

    return asyncio.run(main())


async def run_bench_with(
    args: argparse.Namespace, calls: list[ReplayCall], environ: dict[str, str], partitions: int
) -> BenchReport:
    """run_bench with the options run_options() added to a benchmark's command line."""
    return await run_bench(
        calls,
        speed=args.speed,
        fmt=OutputFormat(Codec.MULAW if args.codec == "mulaw" else Codec.PCM16, args.rate),
        concurrency=args.concurrency,
        partitions=partitions,
        environ=environ,
        timeout_s=args.timeout,
    )


async def run_guarded(work: Callable[[], Awaitable[T]]) -> tuple[int, T | None]:
    """Run a benchmark until it ends or a signal stops it: (0, its result), or (exit code, None)
    with why printed in one line. A signal cancels the run, which unwinds through every finally:
    nothing it started is left running."""
    out: list[T] = []

    async def until_done(stop: asyncio.Event) -> None:
        out.append(await cancel_on(stop, work()))

    try:
        await run_until_signalled(until_done)
    except (StageFailed, ValueError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1, None
    except Exception as exc:  # report, never hang: everything it started is already stopped
        log.debug("bench failed", exc_info=True)
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1, None
    except asyncio.CancelledError:
        print("bench interrupted", file=sys.stderr)
        return 130, None
    return 0, out[0]


def run_options(parser: argparse.ArgumentParser, *, concurrency: int) -> None:
    """The options of a benchmark run (shared with bench.real_speech)."""
    add = parser.add_argument
    add("--concurrency", type=int, default=concurrency, help=f"calls at once (default {concurrency})")
    add("--speed", type=float, default=1.0, help="replay pace, multiple of real time (0 = max)")
    add("--codec", choices=("mulaw", "pcm16"), default="mulaw", help="default mulaw")
    add("--rate", type=int, choices=(8000, 16000), default=8000, help="Hz, default 8000")
    add("--json", metavar="OUT", help="also write the figures to this JSON file")
    add("--timeout", type=float, help="give up after this many seconds (default: from the audio)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        parents=[logging_options()],
        description=(
            "Benchmark of the whole pipeline, started as the demo starts it: replays calls (the bundled\n"
            "demo call unless WAVs are given), waits until PostgreSQL holds every call, then prints p50\n"
            "and p95 of each stage's latency (from the stamps the events carry) and each process's CPU\n"
            "seconds per second of call audio (from /proc). See README, 'Measured'."
        ),
        epilog=SERVICES_ENV,
        formatter_class=formatter,
    )
    p.add_argument("files", nargs="*", metavar="STEREO_WAV", help="calls to replay (default: demo call)")
    p.add_argument("--calls", type=int, default=1, help="replay each recording N times (default 1)")
    run_options(p, concurrency=1)
    return p


def main(argv: list[str] | None = None) -> int:
    """The given stereo WAVs, or the bundled demo call, each `--calls` times."""
    from ingest.demo import DEMO_CALL_WAV

    args = parser().parse_args(argv)
    environ = dict(os.environ)
    try:
        # Its own terminal is for the report; the stages log at INFO into their own files.
        configure_logging_from(args, environ, "WARNING")
        partitions = shared_settings().partitions
    except (UsageError, SettingsError) as exc:
        print(f"bench.pipeline: {exc}", file=sys.stderr)
        return 2
    files = [Path(f) for f in args.files] or [DEMO_CALL_WAV]
    try:
        calls = [ReplayCall.from_stereo(f, agent_id="agent-bench", queue="bench") for f in files]
    except (OSError, ValueError) as exc:  # missing file, not a stereo PCM16 WAV
        print(f"bench.pipeline: {exc}", file=sys.stderr)
        return 2
    return run_and_print(repeated(calls, args.calls), args, environ, partitions)


if __name__ == "__main__":
    sys.exit(main())
