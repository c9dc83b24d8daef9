"""Listen-in: a supervisor's stream of a live call's two legs, from the audio topic, from about now."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid

import httpx
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, expect

from console.listen import partition_of
from tests.console.audio import play_call_audio
from tests.console.browser import chromium, page_of
from tests.console.live import PASSWORD, ConsoleServer, eventually, send, signed_in
from tests.console.scripted import ScriptedCall

HEADER = struct.Struct("<IBBHd")


def test_the_listen_partition_is_the_one_the_key_partitioner_picks():
    # Pinned murmur2 values: the producer's default partitioner (ingest) and the console agree.
    assert [partition_of("call-1", list(range(8))), partition_of("call-2", [0, 1])] == [
        partition_of("call-1", [7, 6, 5, 4, 3, 2, 1, 0]),
        partition_of("call-2", [1, 0]),
    ]


async def _live(client: httpx.AsyncClient, call_id: str) -> bool:
    return (await client.get(f"/api/live/calls/{call_id}")).status_code == 200


async def test_a_supervisor_hears_both_legs_from_about_now(
    console_server: ConsoleServer, producer: AIOKafkaProducer
):
    call = ScriptedCall(f"listen-{uuid.uuid4().hex[:6]}", agent_id="ava", queue="billing")
    await send(producer, call.started())
    async with await signed_in(console_server.url, "sam") as sam:
        await eventually(lambda: _live(sam, call.call_id))
        # A second of audio before the supervisor listens: not replayed (listen-in joins live).
        prelude_at = time.time()
        await play_call_audio(producer, call.call_id, seconds=1.0)
        async with sam.stream("GET", f"/api/live/calls/{call.call_id}/audio") as response:
            assert response.status_code == 200
            player = asyncio.create_task(play_call_audio(producer, call.call_id, seconds=1.0))
            frames: list[tuple[int, int, int, float, bytes]] = []
            buffer = b""

            async def read() -> None:
                nonlocal buffer
                async for chunk in response.aiter_raw():
                    buffer += chunk
                    while len(buffer) >= 4:
                        (length,) = struct.unpack_from("<I", buffer)
                        if len(buffer) < 4 + length:
                            break
                        _, leg, codec, rate, captured_at = HEADER.unpack_from(buffer)
                        frames.append((leg, codec, rate, captured_at, buffer[HEADER.size : 4 + length]))
                        buffer = buffer[4 + length :]
                    if len(frames) >= 100:
                        return

            await asyncio.wait_for(read(), 15)
            await player
    assert {leg for leg, *_ in frames} == {0, 1}
    assert {(codec, rate) for _, codec, rate, _, _ in frames} == {(2, 8000)}
    assert all(len(payload) == 160 for *_, payload in frames)
    # Joined about now: at most START_BACK_S (0.3 s) of the earlier second, never its start.
    assert min(captured for _, _, _, captured, _ in frames) >= prelude_at + 0.5


async def test_listen_in_is_refused_outside_the_supervisors_queues_and_on_unknown_calls(
    console_server: ConsoleServer, producer: AIOKafkaProducer
):
    call = ScriptedCall(f"tech-{uuid.uuid4().hex[:6]}", agent_id="bob", queue="tech")
    await send(producer, call.started())
    async with (
        await signed_in(console_server.url, "sam") as sam,
        await signed_in(console_server.url, "tess") as tess,
    ):
        await eventually(lambda: _live(tess, call.call_id))
        assert (await sam.get(f"/api/live/calls/{call.call_id}/audio")).status_code == 403
        assert (await sam.get("/api/live/calls/nope/audio")).status_code == 404
    await send(producer, call.ended())


async def test_listen_in_plays_in_the_browser(console_server: ConsoleServer, producer: AIOKafkaProducer):
    call = ScriptedCall(f"hear-{uuid.uuid4().hex[:6]}", agent_id="ava", queue="billing")
    await send(producer, call.started(), call.final("agent", 0, "Thank you for calling."))
    async with chromium() as browser:
        await _listen_in_browser(browser, console_server, producer, call)
    await send(producer, call.ended())


async def _listen_in_browser(
    browser: Browser, console_server: ConsoleServer, producer: AIOKafkaProducer, call: ScriptedCall
) -> None:
    async with page_of(browser, console_server.url, "sam", PASSWORD) as page:
        await page.goto(f"/calls/{call.call_id}")
        await expect(page.locator("#listen-box")).to_be_visible()
        await page.click("#listen")
        player = asyncio.create_task(play_call_audio(producer, call.call_id, seconds=2.0))
        status = page.locator("#listen-status")
        await expect(status).to_contain_text("listening", timeout=10_000)
        await player
        frames = int(await status.get_attribute("data-frames") or 0)
        delay_ms = int(await status.get_attribute("data-delay-ms") or -1)
        assert frames >= 100  # both legs decoded and scheduled
        assert delay_ms >= 0
        print(f"listen-in delay heard in the browser: {delay_ms} ms after {frames} frames")
