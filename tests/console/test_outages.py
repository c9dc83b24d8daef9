"""The live feed survives a broker restart and history a database outage: the page says so, then recovers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.runtime import embedded_kafka, free_port
from pipeline.kafka import create_topics
from store.migrate import migrate
from tests.console.browser import chromium, page_of
from tests.console.live import PARTITIONS, PASSWORD, eventually, send, serve_console, signed_in
from tests.console.scripted import ScriptedCall
from tests.console.test_api import store_call
from tests.postgres import restartable_postgres

RECOVERY_S = 30.0  # reconnect backoff tops out at 5 s; a busy box needs more


async def _feed_state(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as client:
        return (await client.get("/healthz")).json()["feed"]["state"]


@contextlib.asynccontextmanager
async def _producer(bootstrap: str):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def test_the_wall_says_the_broker_is_gone_and_shows_new_calls_once_it_is_back(users_path: Path):
    port = free_port()
    before = ScriptedCall(f"before-{uuid.uuid4().hex[:6]}", agent_id="ava", queue="billing")
    after = ScriptedCall(f"after-{uuid.uuid4().hex[:6]}", agent_id="ava", queue="billing")
    broker = embedded_kafka(port)
    bootstrap = broker.__enter__()
    try:
        async with serve_console(bootstrap, users_path) as console, chromium() as browser:
            async with _producer(bootstrap) as producer:
                await send(producer, before.started())
            async with page_of(browser, console.url, "sam", PASSWORD) as page:
                await page.goto("/wall")
                await expect(page.locator(f'#rows tr[data-call-id="{before.call_id}"]')).to_be_visible()
                broker.__exit__(None, None, None)
                broker = None
                await expect(page.locator("#feed")).to_have_text(
                    "broker unavailable: reconnecting", timeout=RECOVERY_S * 1000
                )
                broker = embedded_kafka(port)
                broker.__enter__()  # Tansu restarts empty: the pipeline creates its topics again
                await create_topics(bootstrap, PARTITIONS)
                await expect(page.locator("#feed")).to_have_text("live", timeout=RECOVERY_S * 1000)
                async with _producer(bootstrap) as producer:
                    await send(producer, after.started())
                await expect(page.locator(f'#rows tr[data-call-id="{after.call_id}"]')).to_be_visible(
                    timeout=10_000
                )
            assert await _feed_state(console.url) == "live"
    finally:
        if broker is not None:
            broker.__exit__(None, None, None)


async def _history_status(client: httpx.AsyncClient) -> int:
    return (await client.get("/api/history/calls")).status_code


async def test_history_says_the_database_is_down_and_recovers_while_the_live_wall_goes_on(
    bootstrap: str, users_path: Path
):
    live = ScriptedCall(f"live-{uuid.uuid4().hex[:6]}", agent_id="ava", queue="billing")
    with restartable_postgres() as database:
        await migrate(database.url)
        engine = create_async_engine(database.url)
        stored = ScriptedCall(f"past-{uuid.uuid4().hex[:6]}", agent_id="ava", queue="billing")
        await store_call(engine, stored, [("customer", 0, "the invoice was wrong", -0.3)])
        await engine.dispose()
        async with serve_console(bootstrap, users_path, database_url=database.url) as console:
            async with await signed_in(console.url, "sam") as sam:
                listed = (await sam.get("/api/history/calls")).json()["calls"]
                assert [c["call_id"] for c in listed] == [stored.call_id]
                await asyncio.to_thread(database.stop)
                down = await sam.get("/api/history/calls")
                assert down.status_code == 503 and down.json()["error"] == "database_unavailable"
                assert (await sam.get("/api/search?q=invoice")).status_code == 503
                async with _producer(bootstrap) as producer:
                    await send(producer, live.started())
                await eventually(lambda: _live(sam, live.call_id))  # the wall does not need the database
                async with chromium() as browser, page_of(browser, console.url, "sam", PASSWORD) as page:
                    await page.goto("/history")
                    await expect(page.locator("#history-error")).to_contain_text("history is unavailable")
                    await asyncio.to_thread(database.start)
                    await eventually(lambda: _ok(sam), deadline_s=RECOVERY_S)
                    await page.click("#filter-form button")
                    await expect(
                        page.locator(f'#history-rows tr[data-call-id="{stored.call_id}"]')
                    ).to_be_visible()
                    await expect(page.locator("#history-error")).to_be_hidden()


async def _live(client: httpx.AsyncClient, call_id: str) -> bool:
    return (await client.get(f"/api/live/calls/{call_id}")).status_code == 200


async def _ok(client: httpx.AsyncClient) -> bool:
    return await _history_status(client) == 200
