"""Benchmark of the console: search, stream delivery at load, and final -> visible in a browser.

    .venv/bin/python -m bench.console [--part search|streams|browser|all] [--segments 100000]
        [--agents 200] [--walls 20] [--seconds 30]

search:  PostgreSQL full-text search (migration 0003's GIN index) over --segments stored final
         segments: p50/p95 per query as an admin, a supervisor (queue filter) and an agent.
streams: the console in its own process on the embedded broker; --agents agent streams (panel
         tokens) and --walls supervisor walls connected at once while --agents live calls get a
         hint every ~4 s and calls end and start; hint emitted -> received by the agent's stream,
         and call started -> on every wall, p50/p95/p99; the console's CPU per 100 live calls.
browser: Debian chromium on the call view and the wall: final segment emitted -> its line shown,
         call started -> its row shown, p50/p95 over a scripted call replayed at speaking pace.
Figures are printed, never asserted: the box is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import random
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.latency import percentile
from bench.procstat import machine, process_cpu_seconds

SECRET = "bench-console-secret-" + "x" * 32
PASSWORD = "bench password"
WORDS = (
    "account bill charge refund cancel payment card invoice subscription plan upgrade discount price "
    "router internet outage technician appointment delivery parcel order tracking address password "
    "login reset manager supervisor complaint fee late interest balance statement credit debit transfer "
    "contract renewal loyalty offer premium basic family roaming signal coverage modem speed slow broken "
    "replace warranty return exchange shipping damaged missing wrong number email phone update verify"
).split()
FILLER = "i you we the a my your is was it to for and of on in this that with have has can will".split()


def pct_row(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<44} n=0"
    ms = [v * 1000 for v in values]
    return (
        f"  {name:<44} n={len(ms):<6} p50 {percentile(ms, 50):7.1f} ms  p95 {percentile(ms, 95):7.1f} ms"
        f"  p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms"
    )


def sentence(rng: random.Random) -> str:
    words = [rng.choice(FILLER if rng.random() < 0.55 else WORDS) for _ in range(rng.randint(6, 18))]
    return " ".join(words).capitalize() + "."


# -- search -----------------------------------------------------------------------------------


async def bench_search(segments: int) -> None:
    from sqlalchemy import insert, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from console.access import Principal
    from console.history import search_segments
    from console.params import SearchQuery
    from deploy.runtime import embedded_postgres
    from store.migrate import migrate
    from store.models import Call, Segment

    rng = random.Random(7)
    with embedded_postgres() as url:
        await migrate(url)
        engine = create_async_engine(url)
        calls = max(1, segments // 50)
        queues = ("billing", "tech", "sales", "retention")
        t0 = time.time() - 30 * 86_400
        loaded = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(
                insert(Call.__table__),
                [
                    {
                        "call_id": f"call-{i:06d}",
                        "started_at": datetime.fromtimestamp(t0 + i * 60, UTC),
                        "agent_id": f"a{i % 200:03d}",
                        "queue": queues[i % len(queues)],
                        "direction": "inbound",
                    }
                    for i in range(calls)
                ],
            )
            chunk: list[dict[str, Any]] = []
            for n in range(segments):
                call = n % calls
                chunk.append(
                    {
                        "segment_id": f"seg-{n:08d}",
                        "call_id": f"call-{call:06d}",
                        "leg": "agent" if n % 2 else "customer",
                        "start_ms": (n // calls) * 4000,
                        "end_ms": (n // calls) * 4000 + 3000,
                        "text": sentence(rng),
                    }
                )
                if len(chunk) == 5000:
                    await conn.execute(insert(Segment.__table__), chunk)
                    chunk = []
            if chunk:
                await conn.execute(insert(Segment.__table__), chunk)
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE segments"))
            await conn.execute(text("ANALYZE calls"))
        print(f"  loaded {segments} segments in {calls} calls in {time.perf_counter() - loaded:.1f} s")
        async with engine.connect() as conn:
            plan = (
                (
                    await conn.execute(
                        text(
                            "EXPLAIN SELECT 1 FROM segments WHERE to_tsvector('english'::regconfig, "
                            "coalesce(text, '')) @@ websearch_to_tsquery('english'::regconfig, 'refund')"
                        )
                    )
                )
                .scalars()
                .all()
            )
        print("  plan: " + " / ".join(line.strip() for line in plan if "Index" in line or "Scan" in line))
        queries = [*rng.sample(WORDS, 30), *(f"{rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(15))]
        queries += [f'"{rng.choice(WORDS)} {rng.choice(WORDS)}"' for _ in range(5)]
        who = {
            "admin (every call)": Principal("root", "admin"),
            "supervisor (one queue of four)": Principal("sam", "supervisor", queues=frozenset({"billing"})),
            "agent (own calls, 1 of 200)": Principal("a007", "agent", agent_id="a007"),
        }
        for label, principal in who.items():
            timings = []
            hits = 0
            for _ in range(4):
                for q in queries:
                    started = time.perf_counter()
                    found = await search_segments(engine, principal, SearchQuery(q=q, limit=20))
                    timings.append(time.perf_counter() - started)
                    hits += len(found)
            print(pct_row(f"search, {label}", timings) + f"  ({hits / len(timings):.1f} hits/query)")
        await engine.dispose()


# -- the console in its own process ------------------------------------------------------------


def _serve(config: dict[str, Any]) -> None:
    from console.config import ConsoleConfig
    from console.worker import run
    from pipeline.stage import run_until_signalled

    settings = ConsoleConfig(**config)
    asyncio.run(run_until_signalled(lambda stop: run(settings, stop=stop), drain_deadline_s=5))


@contextlib.asynccontextmanager
async def console_process(bootstrap: str, users: Path, **fields: Any) -> AsyncIterator[tuple[str, int]]:
    from deploy.runtime import free_port

    port = free_port()
    config = {
        "kafka_bootstrap": bootstrap,
        "port": port,
        "users_file": str(users),
        "session_secret": SECRET,
        "metrics_address": "off",
        "readback_s": 60,
        **fields,
    }
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(config,), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=url) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/healthz")).json()["feed"]["state"] == "live":
                    break
            if time.monotonic() > deadline or not proc.is_alive():
                proc.terminate()
                raise RuntimeError("the console did not start")
            await asyncio.sleep(0.2)
    try:
        assert proc.pid is not None
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.join(10)


def write_users(path: Path) -> Path:
    from console.users import add_user

    add_user(path, "root", PASSWORD, "admin")
    return path


async def sign_in(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/login", json={"username": "root", "password": PASSWORD})
    response.raise_for_status()


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    event, data = "", ""
    async for line in response.aiter_lines():
        if not line:
            if event:
                yield event, json.loads(data)
            event, data = "", ""
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]


# -- streams at load ---------------------------------------------------------------------------


async def bench_streams(agents: int, walls: int, seconds: float) -> None:
    from console.auth import Signer
    from deploy.runtime import embedded_kafka
    from pipeline.kafka import create_topics
    from pipeline.topics import TOPICS
    from tests.console.scripted import ScriptedCall

    signer = Signer(SECRET.encode())
    hint_latency: list[float] = []
    wall_latency: list[float] = []
    with embedded_kafka() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        await create_topics(bootstrap, 8)
        async with console_process(bootstrap, write_users(Path(tmp) / "users.yaml")) as (url, pid):
            limits = httpx.Limits(max_connections=agents + walls + 10, max_keepalive_connections=0)
            client = httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(10, read=None))
            wall_clients = [
                httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=None)) for _ in range(walls)
            ]
            for wall in wall_clients:
                await sign_in(wall)
            measuring = asyncio.Event()

            async def agent_stream(agent_id: str) -> None:
                token = signer.issue_panel(agent_id, now=time.time(), ttl_s=3600)
                async with client.stream("GET", f"/api/agent/stream?token={token}") as response:
                    async for event, data in sse_events(response):
                        if event == "hint" and measuring.is_set():
                            hint_latency.append(time.time() - data["emitted_at"])

            async def wall_stream(wall: httpx.AsyncClient) -> None:
                seen: set[str] = set()
                async with wall.stream("GET", "/api/live/wall/stream") as response:
                    async for event, data in sse_events(response):
                        now = time.time()
                        for row in data["calls"]:
                            if row["call_id"] not in seen:
                                seen.add(row["call_id"])
                                if measuring.is_set() and event == "update":
                                    wall_latency.append(now - row["started_at"])

            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
            await producer.start()

            async def send(event: Any) -> None:
                topic = TOPICS.transcripts if event.type.startswith(("call.", "segment.")) else TOPICS.assist
                await producer.send(topic, event.to_bytes(), key=event.call_id.encode())

            async with asyncio.TaskGroup() as group:
                streams = [group.create_task(agent_stream(f"a{i:03d}")) for i in range(agents)]
                streams += [group.create_task(wall_stream(w)) for w in wall_clients]
                await asyncio.sleep(3)  # every stream connected
                generation = [0] * agents
                live = [
                    ScriptedCall(f"c{i:03d}-0", agent_id=f"a{i:03d}", queue="billing") for i in range(agents)
                ]
                for call in live:
                    await send(call.started())
                await producer.flush()
                await asyncio.sleep(2)
                measuring.set()
                cpu_start, wall_start = process_cpu_seconds(pid) or 0.0, time.monotonic()
                rng = random.Random(3)
                tick = 0
                while time.monotonic() - wall_start < seconds:
                    # Every 100 ms: a tenth of the calls... 1/40 of calls get a hint (each ~every 4 s),
                    # and one call in 200 ends and another starts (a call lasts ~20 s on average).
                    for i in rng.sample(range(agents), max(1, agents // 40)):
                        call = live[i]
                        ms = int((time.time() - call.t0) * 1000)
                        hint = call.hint(ms, "bench.rule", "phrase", "a hint")
                        await send(hint.model_copy(update={"emitted_at": time.time()}))
                        await send(call.sentiment("customer", ms, rng.uniform(-1, 1)))
                    if tick % 2 == 0:
                        i = rng.randrange(agents)
                        await send(live[i].ended())
                        generation[i] += 1
                        live[i] = ScriptedCall(
                            f"c{i:03d}-{generation[i]}", agent_id=f"a{i:03d}", queue="billing"
                        )
                        await send(live[i].started())
                    await producer.flush()
                    tick += 1
                    await asyncio.sleep(0.1)
                elapsed = time.monotonic() - wall_start
                cpu = (process_cpu_seconds(pid) or 0.0) - cpu_start
                for task in streams:
                    task.cancel()
            await producer.stop()
            await client.aclose()
            for wall in wall_clients:
                await wall.aclose()
    print(f"  {agents} agent streams + {walls} walls for {elapsed:.0f} s, {agents} live calls")
    print(pct_row("hint emitted -> agent stream", hint_latency))
    print(pct_row("call started -> every wall", wall_latency))
    print(
        f"  console CPU: {cpu / elapsed * 100:.0f}% of one core = {cpu / elapsed * 100 * 100 / agents:.0f}%"
        f" per 100 live calls (with {agents + walls} streams open)"
    )


# -- in the browser ----------------------------------------------------------------------------

_OBSERVE = """
window.__seen = {};
new MutationObserver(() => {
  for (const el of document.querySelectorAll('#lines .line.final, #rows tr')) {
    const id = el.dataset.segmentId || el.dataset.callId;
    if (id && !(id in window.__seen)) window.__seen[id] = Date.now() / 1000;
  }
}).observe(document.documentElement, {subtree: true, childList: true});
"""


async def bench_browser(finals: int) -> None:
    from deploy.runtime import embedded_kafka
    from pipeline.kafka import create_topics
    from pipeline.topics import TOPICS
    from tests.console.browser import chromium, page_of
    from tests.console.scripted import ScriptedCall

    with embedded_kafka() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        await create_topics(bootstrap, 8)
        async with console_process(bootstrap, write_users(Path(tmp) / "users.yaml")) as (url, _):
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
            await producer.start()
            async with chromium() as browser, page_of(browser, url, "root", PASSWORD) as view:
                async with page_of(browser, url, "root", PASSWORD) as wall:
                    await wall.goto("/wall")
                    await wall.evaluate(_OBSERVE)
                    starts: dict[str, float] = {}
                    for i in range(30):
                        call = ScriptedCall(f"wall-{i:02d}", agent_id="ava")
                        starts[call.call_id] = time.time()
                        await producer.send(
                            TOPICS.transcripts,
                            call.started().model_copy(update={"started_at": starts[call.call_id]}).to_bytes(),
                            key=call.call_id.encode(),
                        )
                        await producer.flush()
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(1)
                    seen = await wall.evaluate("window.__seen")
                wall_latency = [seen[k] - t for k, t in starts.items() if k in seen]
                call = ScriptedCall("bench-view", agent_id="ava")
                await producer.send(TOPICS.transcripts, call.started().to_bytes(), key=call.call_id.encode())
                await producer.flush()
                await asyncio.sleep(1)
                await view.goto(f"/calls/{call.call_id}")
                await view.wait_for_selector("#call-status.status-live")
                await view.evaluate(_OBSERVE)
                emitted: dict[str, float] = {}
                for n in range(finals):
                    leg = "agent" if n % 2 else "customer"
                    for rev, words in enumerate(("so i", "so i was", "so i was calling")):
                        partial = call.partial(leg, n * 3000, words, rev)
                        await producer.send(TOPICS.transcripts, partial.to_bytes(), key=call.call_id.encode())
                        await producer.flush()
                        await asyncio.sleep(0.05)
                    final = call.final(leg, n * 3000, "So I was calling about my bill.")
                    stamped = final.model_copy(
                        update={"times": final.times.model_copy(update={"emitted_at": time.time()})}
                    )
                    emitted[final.segment_id] = stamped.times.emitted_at
                    await producer.send(TOPICS.transcripts, stamped.to_bytes(), key=call.call_id.encode())
                    await producer.flush()
                    await asyncio.sleep(0.25)
                await asyncio.sleep(1)
                seen = await view.evaluate("window.__seen")
            await producer.stop()
    print(
        pct_row(
            "final emitted -> shown in the call view", [seen[k] - t for k, t in emitted.items() if k in seen]
        )
    )
    print(pct_row("call started -> row shown on the wall", wall_latency))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("search", "streams", "browser", "all"), default="all")
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--walls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--finals", type=int, default=60)
    args = parser.parse_args()
    print(f"machine: {machine().describe()}")
    if args.part in ("search", "all"):
        print("search")
        asyncio.run(bench_search(args.segments))
    if args.part in ("browser", "all"):
        print("browser")
        asyncio.run(bench_browser(args.finals))
    if args.part in ("streams", "all"):
        print("streams")
        asyncio.run(bench_streams(args.agents, args.walls, args.seconds))


if __name__ == "__main__":
    main()
