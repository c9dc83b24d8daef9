"""Load benchmark of the telephony gateway: concurrent calls at real-time pace over loopback.

The gateway runs as its own process (`callscope ingest gateway`) against an embedded broker; this
process plays the telephony side (Twilio, AudioHook and generic calls in turn) and reads the
audio topic back. It prints open latency, frame latency gateway -> topic (the record's timestamp
is the gateway's receive time), the gateway's CPU per call and the frames lost, which must be 0.
Bounded: calls start over `ramp_s`, last `seconds`, and the read-back has a deadline.

    python -m bench.gateway [--calls 200] [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.clients import AudioHookClient, GenericClient, TwilioClient, interleave
from bench.procstat import child_pids_named, process_cpu_seconds
from deploy.runtime import embedded_kafka, free_port
from ingest.events import AudioFrame, CallEnded, CallStarted, parse_audio_record
from ingest.wavsource import mulaw_encode
from pipeline.kafka import create_topics
from pipeline.topics import TOPICS

FRAME_S = 0.02
PARTITIONS = 8
_TOKEN = "loadtest-twilio-token"
_API_KEY = "loadtest-api-key"
_SECRET = base64.b64encode(b"loadtest-client-secret-32-bytes!").decode()
_BEARER = "loadtest-bearer"
READBACK_DEADLINE_S = 30.0
PROTOCOLS = ("twilio", "audiohook", "generic")


@dataclass(frozen=True)
class LoadSpec:
    calls: int = 200
    seconds: float = 40.0
    ramp_s: float = 5.0
    protocols: tuple[str, ...] = PROTOCOLS


@dataclass
class CallResult:
    call_id: str
    protocol: str
    handshake_s: float = 0.0
    open_s: float | None = None  # connect -> opened/started reply (protocols that reply)
    frames_sent: int = 0  # in audio topic frames (one per leg)
    max_lag_s: float = 0.0  # how far behind its real-time schedule the client fell
    error: str = ""


@dataclass
class TopicCount:
    frames: Counter[str] = field(default_factory=Counter)
    next_seq: dict[tuple[str, str], int] = field(default_factory=dict)  # per call and leg
    gaps: int = 0  # frames missing between two frames that did arrive
    repeats: int = 0  # frames that arrived twice or out of order
    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    latencies_s: list[float] = field(default_factory=list)
    wanted: dict[str, int] | None = None  # frames per call the read-back waits for
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.wanted is not None and all(
            c in self.ended and self.frames[c] >= n for c, n in self.wanted.items()
        ):
            self.complete.set()


def _tone() -> tuple[bytes, bytes]:
    t = np.arange(160) / 8000
    agent = mulaw_encode((3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    customer = mulaw_encode((3000 * np.sin(2 * np.pi * 660 * t)).astype(np.int16))
    return agent, customer


async def _paced(result: CallResult, frames: int, send_slot) -> None:  # noqa: ANN001
    start = time.monotonic()
    for n in range(frames):
        delay = start + n * FRAME_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_lag_s = max(result.max_lag_s, -delay)
        result.frames_sent += await send_slot(n)


async def _call(protocol: str, base: str, port: int, delay_s: float, seconds: float) -> CallResult:
    await asyncio.sleep(delay_s)
    frames = round(seconds / FRAME_S)
    agent, customer = _tone()
    result = CallResult(call_id="", protocol=protocol)
    t0 = time.monotonic()
    phase = "connect"
    try:
        match protocol:
            case "twilio":
                url = f"{base}/twilio"
                client = TwilioClient(url, _TOKEN, "CA" + uuid.uuid4().hex)
                result.call_id = client.call_id
                async with client:
                    result.handshake_s = time.monotonic() - t0
                    await client.start()

                    async def twilio_slot(n: int) -> int:
                        await client.media("inbound", customer, n * 20)
                        await client.media("outbound", agent, n * 20)
                        return 2

                    phase = "stream"
                    await _paced(result, frames, twilio_slot)
                    phase = "end"
                    await client.stop()
                    await client.wait_closed()
            case "audiohook":
                async with AudioHookClient(f"{base}/audiohook", _API_KEY, _SECRET) as client:
                    result.handshake_s = time.monotonic() - t0
                    conversation = str(uuid.uuid4())
                    opened = await client.open(conversation)
                    result.open_s = time.monotonic() - t0
                    assert opened["type"] == "opened", opened
                    result.call_id = f"{conversation}:{client.session_id}"
                    stereo = interleave(customer, agent)

                    async def audiohook_slot(n: int) -> int:
                        await client.audio(stereo)
                        return 2

                    phase = "stream"
                    await _paced(result, frames, audiohook_slot)
                    phase = "end"
                    await client.close()
                    await client.wait_closed()
            case _:
                result.call_id = "gen-" + uuid.uuid4().hex
                async with GenericClient(f"{base}/v1/stream", _BEARER) as client:
                    result.handshake_s = time.monotonic() - t0
                    await client.start(result.call_id)
                    result.open_s = time.monotonic() - t0

                    async def generic_slot(n: int) -> int:
                        await client.audio("agent", agent)
                        await client.audio("customer", customer)
                        return 2

                    phase = "stream"
                    await _paced(result, frames, generic_slot)
                    phase = "end"
                    await client.end()
                    await client.wait_closed()
    except Exception as exc:  # a failed call is reported, not fatal to the benchmark
        result.error = f"{phase}: {type(exc).__name__}: {exc}"[:200]
    return result


async def _read_topic(bootstrap: str, counts: TopicCount, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10, client_id="loadtest"
    )
    await consumer.start()
    try:
        parts = [TopicPartition(TOPICS.audio, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50, max_records=5000)
            now_ms = time.time() * 1000
            for records in batches.values():
                for record in records:
                    event = parse_audio_record(record.value)
                    match event:
                        case AudioFrame():
                            counts.frames[event.call_id] += 1
                            leg = (event.call_id, event.leg)
                            expected = counts.next_seq.get(leg, 0)
                            counts.gaps += max(0, event.seq - expected)
                            counts.repeats += event.seq < expected
                            counts.next_seq[leg] = max(expected, event.seq + 1)
                            counts.latencies_s.append((now_ms - record.timestamp) / 1000)
                        case CallStarted():
                            counts.started.add(event.call_id)
                        case CallEnded():
                            counts.ended.add(event.call_id)
            counts.check()
    finally:
        await consumer.stop()


def _gateway_env(bootstrap: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CALLSCOPE_KAFKA_BOOTSTRAP=bootstrap,
        CALLSCOPE_INGEST_PORT=str(port),
        CALLSCOPE_INGEST_METRICS_ADDRESS="127.0.0.1:0",  # never the default port a real gateway may hold
        CALLSCOPE_INGEST_TWILIO_AUTH_TOKEN=_TOKEN,
        CALLSCOPE_INGEST_TWILIO_PUBLIC_URL=f"ws://127.0.0.1:{port}",
        CALLSCOPE_INGEST_AUDIOHOOK_API_KEYS=json.dumps({_API_KEY: _SECRET}),
        CALLSCOPE_INGEST_GENERIC_TOKENS=json.dumps([_BEARER]),
        CALLSCOPE_LOG_LEVEL="WARNING",
        CALLSCOPE_LOG_FORMAT="text",
    )
    return env


async def _wait_for_port(port: int, proc: asyncio.subprocess.Process, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"gateway exited with code {proc.returncode}")
            with contextlib.suppress(OSError):
                await asyncio.to_thread(socket.create_connection(("127.0.0.1", port), timeout=0.2).close)
                return
            await asyncio.sleep(0.05)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run(spec: LoadSpec, bootstrap: str) -> int:
    await create_topics(bootstrap, PARTITIONS)
    port = free_port()
    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.cli", "ingest", "gateway", env=_gateway_env(bootstrap, port)
    )
    counts, stop_reading = TopicCount(), asyncio.Event()
    try:
        await _wait_for_port(port, gateway)
        reader = asyncio.create_task(_read_topic(bootstrap, counts, stop_reading), name="loadtest-reader")
        base = f"ws://127.0.0.1:{port}"
        step = spec.ramp_s / max(1, spec.calls)
        protocols = [spec.protocols[i % len(spec.protocols)] for i in range(spec.calls)]
        # CPU is sampled while every call is up: after the ramp, before the first call ends.
        cpu_window = (spec.ramp_s + 1.0, spec.seconds - 1.0)
        pids = {"gateway": gateway.pid, "client": os.getpid()}
        brokers = child_pids_named(os.getpid(), "tansu")
        if brokers:
            pids["broker"] = brokers[0]
        cpu_task = asyncio.create_task(_cpu_in_window(pids, cpu_window), name="loadtest-cpu")
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(_call(p, base, port, i * step, spec.seconds), name=f"loadtest-call-{i}")
                for i, p in enumerate(protocols)
            ]
        results = [t.result() for t in tasks]
        cpu = await cpu_task
        counts.wanted = {r.call_id: r.frames_sent for r in results if r.call_id}
        counts.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(counts.complete.wait(), READBACK_DEADLINE_S)
        stop_reading.set()
        await reader
    finally:
        if gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(gateway.wait(), 20)
            except TimeoutError:
                gateway.kill()
                await gateway.wait()
    return _report(spec, results, counts, cpu)


async def _cpu_in_window(pids: dict[str, int], window: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """(CPU seconds, wall seconds) per named process between the window's bounds (from now)."""
    start, end = window
    if end - start < 2.0:
        return {}
    t0 = time.monotonic()
    await asyncio.sleep(start)
    before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    wall0 = time.monotonic()
    await asyncio.sleep(end - (time.monotonic() - t0))
    after = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    wall = time.monotonic() - wall0
    return {
        name: (after[name] - before[name], wall)  # type: ignore[operator]
        for name in pids
        if before[name] is not None and after[name] is not None
    }


def _report(spec: LoadSpec, results: list[CallResult], counts: TopicCount, cpu) -> int:  # noqa: ANN001
    failed = [r for r in results if r.error]
    sent = sum(r.frames_sent for r in results)
    on_topic = sum(min(counts.frames[r.call_id], r.frames_sent) for r in results if r.call_id)
    lost = sum(max(0, r.frames_sent - counts.frames[r.call_id]) for r in results if r.call_id)
    by_protocol = Counter(r.protocol for r in results)
    opens = [r.open_s for r in results if r.open_s is not None]
    shakes = [r.handshake_s for r in results if r.handshake_s]
    lags = [r.max_lag_s for r in results]
    ms = 1000.0
    mix = ", ".join(f"{n} {p}" for p, n in by_protocol.items())
    print(
        f"\ngateway load test: {spec.calls} calls ({mix}), {spec.seconds:g} s of audio each at real-time pace"
    )
    print(
        f"  open latency (connect -> opened/started), n={len(opens)}: "
        f"p50 {_pct(opens, 50) * ms:.1f} ms, p99 {_pct(opens, 99) * ms:.1f} ms"
    )
    print(
        f"  handshake (connect -> upgraded, signature checked), n={len(shakes)}: "
        f"p50 {_pct(shakes, 50) * ms:.1f} ms, p99 {_pct(shakes, 99) * ms:.1f} ms"
    )
    lat = counts.latencies_s
    print(
        f"  frame latency gateway -> topic, n={len(lat)}: "
        f"p50 {_pct(lat, 50) * ms:.1f} ms, p99 {_pct(lat, 99) * ms:.1f} ms"
    )
    if "gateway" in cpu:
        cpu_s, wall_s = cpu["gateway"]
        per_call_ms = cpu_s / wall_s / spec.calls * ms
        print(
            f"  gateway CPU: {cpu_s / wall_s:.0%} of one core for {spec.calls} calls = "
            f"{per_call_ms:.2f} ms CPU per second of call"
        )
    others = ", ".join(f"{name} {c / w:.0%}" for name, (c, w) in cpu.items() if name != "gateway")
    if others:
        print(f"  other processes, share of one core: {others} (load average {os.getloadavg()[0]:.1f})")
    print(
        f"  client pacing: worst lag behind real time p50 {_pct(lags, 50) * ms:.0f} ms, "
        f"p99 {_pct(lags, 99) * ms:.0f} ms"
    )
    started = sum(1 for r in results if r.call_id in counts.started)
    ended = sum(1 for r in results if r.call_id in counts.ended)
    print(
        f"  calls: {started}/{spec.calls} started, {ended}/{spec.calls} ended on the topic, "
        f"{len(failed)} failed"
    )
    print(f"  frames: sent {sent}, on topic {on_topic}, lost {lost}")
    if lost or counts.gaps or counts.repeats:
        lossy = Counter(r.protocol for r in results if r.call_id and counts.frames[r.call_id] < r.frames_sent)
        print(f"    gaps inside legs {counts.gaps}, repeated {counts.repeats}, short calls: {dict(lossy)}")
    for r in failed[:5]:
        print(f"    failed {r.protocol} call: {r.error}")
    return 0 if lost == 0 and not failed and ended == spec.calls else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.gateway",
        description=(
            "Starts an embedded broker and the gateway as a subprocess, drives concurrent calls over\n"
            "loopback at real-time pace (Twilio, AudioHook and generic in turn) and prints open latency,\n"
            "frame latency gateway -> topic, gateway CPU per call and frames lost."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--calls", type=int, default=200, help="concurrent calls (default 200)")
    p.add_argument("--seconds", type=float, default=40.0, help="audio per call, seconds (default 40)")
    p.add_argument(
        "--ramp", type=float, default=5.0, help="calls start spread over this many seconds (default 5)"
    )
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated, used in turn")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    if args.calls < 1 or args.seconds <= 0 or args.ramp < 0:
        print("bench.gateway: --calls, --seconds must be positive", file=sys.stderr)
        return 2
    if not protocols or not set(protocols) <= set(PROTOCOLS):
        print("bench.gateway: --protocols takes twilio, audiohook, generic", file=sys.stderr)
        return 2
    spec = LoadSpec(calls=args.calls, seconds=args.seconds, ramp_s=args.ramp, protocols=protocols)
    with embedded_kafka() as bootstrap:
        return asyncio.run(run(spec, bootstrap))


if __name__ == "__main__":
    sys.exit(main())
