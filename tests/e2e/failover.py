"""Failover harness: transcription workers as processes on a real broker, live calls, a transcript tap.

Used by tests/e2e/test_failover.py (workers on the fake session factory: the tests are about
group membership, rebalances and commits, not speech) and bench/failover.py (the real engine).
`python -m tests.e2e.failover worker` runs one transcription worker whose sessions are
tests/transcribe/fakes.FakeSession: a final per FAKE_TURN_MS of audio, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from ingest.events import encode_audio_record
from pipeline.kafka import make_producer
from pipeline.topics import TOPICS
from tests.transcribe.calls import FRAME_MS, call_records, frames_of
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    TranscriptCallEnded,
    TranscriptCallStarted,
    parse_transcript_event,
)

FAKE_TURN_MS = 500
POLL_S = 0.1


@contextlib.contextmanager
def frozen_capable_broker() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Tansu broker of this test's own, so it can be frozen (SIGSTOP) and thawed (SIGCONT)."""
    from deploy.runtime import free_port, tansu_binary

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the broker did not start"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.02)
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Worker:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    def lines(self) -> list[dict]:
        """The worker's JSON log lines so far (non-JSON lines, e.g. a traceback, as {"raw": ...})."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def logged(self, msg: str) -> list[dict]:
        return [line for line in self.lines() if line.get("msg") == msg]

    def signal(self, sig: signal.Signals) -> float:
        """Send `sig`; returns the monotonic time it was sent."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        return time.monotonic()

    async def wait(self, deadline_s: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), deadline_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"worker {self.name} did not exit within {deadline_s} s") from None


async def start_worker(
    name: str, logdir: Path, bootstrap: str, partitions: int, *, fake: bool = True, env: dict | None = None
) -> Worker:
    """A transcription worker process: the fake engine (this module) or `callscope transcribe`."""
    log_path = logdir / f"{name}.log"
    environ = {
        **os.environ,
        "CALLSCOPE_KAFKA_BOOTSTRAP": bootstrap,
        "CALLSCOPE_PARTITIONS": str(partitions),
        "CALLSCOPE_TRANSCRIBE_METRICS_ADDRESS": "off",
        "CALLSCOPE_TRANSCRIBE_CLIENT_ID": f"callscope-transcribe-{name}",
        "CALLSCOPE_LOG_FORMAT": "json",
        **(env or {}),
    }
    args = ["-m", "tests.e2e.failover", "worker"] if fake else ["-m", "deploy.cli", "transcribe"]
    log_file = await asyncio.to_thread(open, log_path, "ab")
    with log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    return Worker(name, proc, log_path)


async def until(
    what: str, probe: Callable[[], object], deadline_s: float, *, workers: list[Worker] = ()
) -> object:
    """Poll `probe` until truthy; fail after `deadline_s` (with the workers' log tails)."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {w.name} ---\n" + "\n".join(w.log_path.read_text(errors="replace").splitlines()[-15:])
                for w in workers
            )
            raise AssertionError(f"timed out after {deadline_s} s {what}\n{tails}")
        await asyncio.sleep(POLL_S)


def assigned_partitions(worker: Worker) -> list[list[int]]:
    """Each assignment the worker logged, in order."""
    return [line["partitions"] for line in worker.logged("partitions assigned")]


def call_on_partition(partition: int, partitions: int, prefix: str) -> str:
    """A call id that the default partitioner (the ingest's, keyed by call id) puts on `partition`."""
    partitioner = DefaultPartitioner()
    for i in range(10_000):
        call_id = f"{prefix}-{i}"
        if partitioner(call_id.encode(), list(range(partitions)), list(range(partitions))) == partition:
            return call_id
    raise AssertionError("no call id found")  # pragma: no cover


async def produce_silent_calls(bootstrap: str, call_ids: list[str], seconds: float) -> None:
    """`seconds` of customer audio per call, paced at real time, in 20 ms frames, then call.ended."""
    calls = []
    for call_id in call_ids:
        frames = frames_of(
            call_id, "customer", np.zeros(int(8_000 * seconds), dtype=np.int16), sample_rate_hz=8_000
        )
        calls.append([encode_audio_record(r) for r in call_records(call_id, {"customer": frames})])
    producer = make_producer(bootstrap, client_id="failover-calls", linger_ms=2)
    await producer.start()
    try:
        start = time.monotonic()
        for i in range(max(len(c) for c in calls)):
            # record i of each call: call.started, frames, call.ended; frame i is due at i*20 ms
            delay = start + max(0, i - 1) * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for call_id, records in zip(call_ids, calls, strict=True):
                if i < len(records):
                    await producer.send(TOPICS.audio, records[i], key=call_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


@dataclass
class Arrival:
    final: FinalSegment | PartialSegment  # a final, except in CallSeen.partials
    at: float  # monotonic time the tap read it


@dataclass
class CallSeen:
    finals: list[Arrival] = field(default_factory=list)
    partials: list[Arrival] = field(default_factory=list)
    ended: bool = False
    started_at: float | None = None  # the call's own start (wall time), from its call.started

    def segment_ids(self) -> list[str]:
        return [a.final.segment_id for a in self.finals]

    def resent(self) -> int:
        """Finals emitted more than once (same deterministic id)."""
        ids = self.segment_ids()
        return len(ids) - len(set(ids))

    def uncovered_ms(self, leg: str, until_ms: int) -> int:
        """Audio of `leg` in [0, until_ms) covered by no final."""
        spans = sorted({(a.final.start_ms, a.final.end_ms) for a in self.finals if a.final.leg == leg})
        covered, reach = 0, 0
        for start, end in spans:
            start, end = max(start, reach), min(end, until_ms)
            if end > start:
                covered += end - start
                reach = end
        return until_ms - covered


class TranscriptTap:
    """Reads the transcript topic from the start; finals and call.ended per call, with arrival times."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self._bootstrap = bootstrap
        self._partitions = partitions
        self.calls: defaultdict[str, CallSeen] = defaultdict(CallSeen)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(TOPICS.transcripts, p) for p in range(self._partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                for records in batches.values():
                    for record in records:
                        event = parse_transcript_event(record.value)
                        if isinstance(event, FinalSegment):
                            self.calls[event.call_id].finals.append(Arrival(event, now))
                        elif isinstance(event, PartialSegment):
                            self.calls[event.call_id].partials.append(Arrival(event, now))
                        elif isinstance(event, TranscriptCallStarted):
                            self.calls[event.call_id].started_at = event.started_at
                        elif isinstance(event, TranscriptCallEnded):
                            self.calls[event.call_id].ended = True
        finally:
            await consumer.stop()


def _run_fake_worker() -> None:
    from pipeline.logs import configure_logging
    from pipeline.settings import load_settings
    from pipeline.stage import run_until_signalled
    from tests.transcribe.fakes import FakeSessionFactory
    from transcribe.config import TranscribeConfig
    from transcribe.worker import run

    configure_logging("json", os.environ.get("CALLSCOPE_LOG_LEVEL", "INFO"), stage="transcribe")
    config = load_settings(TranscribeConfig)
    factory = FakeSessionFactory(turn_ms=FAKE_TURN_MS)

    async def main() -> None:
        await run_until_signalled(
            lambda stop: run(config, stop=stop, session_factory=factory),
            drain_deadline_s=config.drain_deadline_s,
        )

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    _run_fake_worker()
