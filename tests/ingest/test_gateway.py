"""The telephony gateway over real sockets: `websockets` clients speaking each protocol, the real
(embedded Tansu) broker behind it. Each test reads back what reached the audio and dead-letter topics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from urllib.request import urlopen

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bench.clients import AudioHookClient, GenericClient, TwilioClient, interleave
from bench.procstat import child_pids_named
from deploy.runtime import embedded_kafka, free_port
from ingest import metrics
from ingest.config import GatewayConfig
from ingest.events import AudioFrame, CallEnded, CallStarted, Codec, parse_audio_record
from ingest.gateway import open_gateway, run
from pipeline.deadletter import DeadLetter
from pipeline.kafka import create_topics
from pipeline.topics import TOPICS
from tests.topics import read_until

TWILIO_TOKEN = "twilio-auth-token"
API_KEY = "audiohook-api-key"
SECRET = base64.b64encode(b"audiohook client secret 32 bytes").decode()
BEARER = "pbx-bearer-token"
PUBLIC_URL = "wss://gateway.test"  # what Twilio dials (TLS ends at a proxy) and signs
DEADLINE_S = 20.0
MULAW_20MS = b"\x7e\xfe" * 80


@pytest.fixture(scope="module", autouse=True)
def _topics(bootstrap: str) -> None:
    """The pipeline's topics at two partitions on the module's broker."""
    asyncio.run(create_topics(bootstrap, partitions=2))


def gateway_config(bootstrap: str, **overrides) -> GatewayConfig:
    values = {
        "kafka_bootstrap": bootstrap,
        "port": 0,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_public_url": PUBLIC_URL,
        "audiohook_api_keys": {API_KEY: SECRET},
        "generic_tokens": [BEARER],
        "close_wait_s": 2.0,
    }
    return GatewayConfig(**(values | overrides))


@pytest.fixture
async def gateway(bootstrap: str):
    async with open_gateway(gateway_config(bootstrap)) as running:
        yield f"ws://127.0.0.1:{running.port}"


async def read_topic(bootstrap: str, topic: str, done: Callable[[list[bytes]], bool]) -> list[bytes]:
    return await read_until(bootstrap, topic, done, DEADLINE_S)


async def call_records(bootstrap: str, call_id: str) -> list:
    """The call's records on the audio topic, up to and including its CallEnded."""

    def mine(values: list[bytes]) -> list:
        out = []
        for value in values:
            record = parse_audio_record(value)
            if record.call_id == call_id:
                out.append(record)
        return out

    values = await read_topic(
        bootstrap, TOPICS.audio, lambda vs: any(isinstance(r, CallEnded) for r in mine(vs))
    )
    return mine(values)


async def dead_letters(bootstrap: str, reason: str) -> list[DeadLetter]:
    def matching(values: list[bytes]) -> list[DeadLetter]:
        letters = [DeadLetter.model_validate_json(v) for v in values]
        return [letter for letter in letters if letter.reason == reason]

    return matching(await read_topic(bootstrap, TOPICS.deadletter, lambda vs: bool(matching(vs))))


def legs(records: list, leg: str) -> list[AudioFrame]:
    return [r for r in records if isinstance(r, AudioFrame) and r.leg == leg]


async def test_twilio_stream_reaches_the_audio_topic_as_one_ordered_call(bootstrap, gateway):
    call_sid = "CA" + os.urandom(16).hex()
    custom = {"agent_id": "agent-7", "queue": "billing", "crm_case": "1234"}
    client = TwilioClient(
        f"{gateway}/twilio",
        TWILIO_TOKEN,
        call_sid,
        custom_parameters=custom,
        signed_url=f"{PUBLIC_URL}/twilio",
    )
    async with client:
        await client.start()
        for n in range(25):
            await client.media("inbound", MULAW_20MS, n * 20)
            await client.media("outbound", MULAW_20MS, n * 20)
        await client.mark("greeting-done")
        await client.dtmf("5")
        await client.stop()
        assert await client.wait_closed() == (1000, "stream stopped")

    started, *frames, ended = await call_records(bootstrap, client.call_id)
    assert isinstance(started, CallStarted) and started.source == "twilio"
    assert (started.agent_id, started.queue, started.metadata["crm_case"]) == ("agent-7", "billing", "1234")
    assert isinstance(ended, CallEnded) and ended.reason == "hangup"
    for leg in ("customer", "agent"):
        mine = legs(frames, leg)
        assert [f.seq for f in mine] == list(range(25))
        assert [f.offset_samples for f in mine] == [n * 160 for n in range(25)]
        assert all(
            f.codec is Codec.MULAW and f.sample_rate_hz == 8000 and f.payload == MULAW_20MS for f in mine
        )


async def test_audiohook_session_opens_pings_pauses_and_closes(bootstrap, gateway):
    opens_before = metrics.OPEN_LATENCY.labels("audiohook")._sum.get()
    async with AudioHookClient(f"{gateway}/audiohook", API_KEY, SECRET) as client:
        conversation = "6a2e1c8e-5c1f-4f7b-9d36-1f0e0b8f1a2b"
        opened = await client.open(
            conversation, participant={"id": "p-9", "ani": "+15550100", "aniName": "", "dnis": "+18005550199"}
        )
        assert opened["type"] == "opened" and opened["clientseq"] == 1
        assert opened["parameters"]["media"][0]["channels"] == ["external", "internal"]
        customer, agent = b"\x11" * 160, b"\x22" * 160
        for _ in range(10):
            await client.audio(interleave(customer, agent))
        await client.send("ping", {"rtt": "PT0.01S"})
        assert (await client.receive())["type"] == "pong"
        await client.send("paused")
        await client.audio(interleave(customer, agent))  # dropped: the stream is paused
        await client.send("resumed", {"start": "PT0.2S", "discarded": "PT1S"})
        await client.audio(interleave(customer, agent))
        closed = await client.close()
        assert closed["type"] == "closed"
        assert await client.wait_closed() == (1000, "closed")
    call_id = f"{conversation}:{client.session_id}"

    started, *frames, ended = await call_records(bootstrap, call_id)
    assert started.source == "audiohook" and started.metadata["genesys.participant_id"] == "p-9"
    assert ended.reason == "hangup"
    customer_frames, agent_frames = legs(frames, "customer"), legs(frames, "agent")
    assert [f.payload for f in customer_frames] == [customer] * 11
    assert [f.payload for f in agent_frames] == [agent] * 11
    assert customer_frames[-1].offset_samples == 10 * 160 + 8000  # after the 1 s the client discarded
    assert metrics.OPEN_LATENCY.labels("audiohook")._sum.get() > opens_before


async def test_audiohook_probe_connection_is_answered_without_a_call(bootstrap, gateway):
    async with AudioHookClient(f"{gateway}/audiohook", API_KEY, SECRET) as client:
        opened = await client.open("00000000-0000-0000-0000-000000000000")
        assert opened["type"] == "opened"
        assert (await client.close())["type"] == "closed"


async def test_generic_protocol_carries_pcm16_16k_both_legs(bootstrap, gateway):
    async with GenericClient(f"{gateway}/v1/stream", BEARER) as client:
        assert await client.start("pbx-42", "pcm16", 16000, agent_id="a-1", metadata={"trunk": "t1"}) == {
            "type": "started",
            "call_id": "pbx-42",
        }
        for _ in range(5):
            await client.audio("agent", b"\x01\x00" * 320)
            await client.audio("customer", b"\x02\x00" * 320)
        assert await client.end() == {"type": "ended", "call_id": "pbx-42"}
        assert (await client.wait_closed())[0] == 1000
    started, *frames, ended = await call_records(bootstrap, "pbx-42")
    assert started.metadata == {"trunk": "t1"} and ended.reason == "hangup"
    assert [f.offset_samples for f in legs(frames, "agent")] == [0, 320, 640, 960, 1280]
    assert all(f.codec is Codec.PCM16 and f.sample_rate_hz == 16000 for f in frames)


async def test_a_socket_dropped_mid_call_still_ends_the_call(bootstrap, gateway):
    client = GenericClient(f"{gateway}/v1/stream", BEARER)
    async with client:
        await client.start("pbx-dropped")
        await client.audio("customer", MULAW_20MS)
        client.ws.transport.abort()  # no end, no close handshake: the line just went away
    *_, ended = await call_records(bootstrap, "pbx-dropped")
    assert ended.reason == "disconnected"


@pytest.mark.parametrize(
    ("path", "headers", "status", "reason"),
    [
        ("/twilio", {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, 401, "bad_signature"),
        ("/twilio", {}, 401, "missing_signature"),
        ("/audiohook", {"X-API-KEY": API_KEY}, 400, "missing_header"),
        ("/v1/stream", {"Authorization": "Bearer wrong"}, 401, "bad_token"),
        ("/nowhere", {}, 404, None),
    ],
)
async def test_unauthenticated_upgrades_are_refused_and_dead_lettered(
    bootstrap, gateway, path, headers, status, reason
):
    with pytest.raises(InvalidStatus) as caught:
        await connect(f"{gateway}{path}", additional_headers=headers, proxy=None)
    assert caught.value.response.status_code == status
    if reason is not None:
        assert (await dead_letters(bootstrap, reason))[0].stage == "ingest"


async def test_audiohook_upgrade_with_a_bad_signature_is_refused(bootstrap, gateway):
    client = AudioHookClient(
        f"{gateway}/audiohook", API_KEY, base64.b64encode(b"the wrong secret" * 2).decode()
    )
    with pytest.raises(InvalidStatus) as caught:
        await client.__aenter__()
    assert caught.value.response.status_code == 401


async def test_bad_input_ends_only_its_own_call_with_an_error_and_a_dead_letter(bootstrap, gateway):
    good = GenericClient(f"{gateway}/v1/stream", BEARER)
    async with good:
        await good.start("pbx-good")
        await good.audio("agent", MULAW_20MS)
        async with TwilioClient(
            f"{gateway}/twilio", TWILIO_TOKEN, "CA-bad", signed_url=f"{PUBLIC_URL}/twilio"
        ) as bad:
            await bad.start()
            await bad.media("inbound", MULAW_20MS, 0)
            await bad.send(
                {
                    "event": "media",
                    "sequenceNumber": "9",
                    "streamSid": bad.stream_sid,
                    "media": {"track": "inbound", "timestamp": "20", "payload": "%%%not base64%%%"},
                }
            )
            assert await bad.wait_closed() == (1007, "invalid_base64")
        async with AudioHookClient(f"{gateway}/audiohook", API_KEY, SECRET) as hook:
            await hook.open()
            await hook.ws.send(b"\xff" * 321)  # half a stereo sample: not PCMU stereo
            error = await hook.receive()
            assert error["type"] == "error" and error["parameters"]["code"] == 400
            assert (await hook.close("error"))["type"] == "closed"
        await good.audio("agent", MULAW_20MS)  # the good call never noticed
        assert (await good.end())["type"] == "ended"

    *_, bad_end = await call_records(bootstrap, bad.call_id)
    assert bad_end.reason == "protocol_error"
    records = await call_records(bootstrap, "pbx-good")
    assert len(legs(records, "agent")) == 2 and records[-1].reason == "hangup"
    [letter] = [d for d in await dead_letters(bootstrap, "invalid_base64") if d.key == bad.call_id]
    assert b"not base64" in base64.b64decode(letter.value_b64)
    assert await dead_letters(bootstrap, "bad_payload_size")


async def test_an_oversized_message_is_closed_with_1009_and_dead_lettered(bootstrap):
    async with open_gateway(gateway_config(bootstrap, max_message_bytes=4_096)) as running:
        async with GenericClient(f"ws://127.0.0.1:{running.port}/v1/stream", BEARER) as client:
            await client.start("pbx-big")
            await client.ws.send(b"\x00" + b"\xff" * 10_000)
            code, _ = await client.wait_closed()
    assert code == 1009
    assert (await call_records(bootstrap, "pbx-big"))[-1].reason == "protocol_error"
    assert await dead_letters(bootstrap, "oversized")


@contextlib.contextmanager
def own_broker() -> Iterator[tuple[str, int]]:
    """A broker of this test alone, with its process id (to pause or stop it)."""
    before = set(child_pids_named(os.getpid(), "tansu"))
    with embedded_kafka() as address:
        [pid] = set(child_pids_named(os.getpid(), "tansu")) - before
        yield address, pid


async def test_a_paused_broker_back_pressures_the_socket_and_loses_nothing(tmp_path):
    with own_broker() as (address, pid):
        await create_topics(address, partitions=1)
        config = gateway_config(
            address, max_in_flight_records=10, max_queued_messages=4, broker_deadline_s=30
        )
        async with open_gateway(config) as running:
            async with GenericClient(f"ws://127.0.0.1:{running.port}/v1/stream", BEARER) as client:
                await client.start("pbx-slow")
                taken = metrics.FRAMES_IN.labels("generic")
                os.kill(pid, signal.SIGSTOP)
                try:
                    before = taken._value.get()
                    sender = asyncio.create_task(send_frames(client, 300))
                    window_end = time.monotonic() + 1.0  # watch the gateway while the broker is stalled
                    while time.monotonic() < window_end:
                        assert taken._value.get() - before <= 10  # no more than the in-flight window
                        await asyncio.sleep(0.05)
                    assert not sender.done()  # the client is held back: TCP pushes back on it
                finally:
                    os.kill(pid, signal.SIGCONT)
                await sender
                await client.end()
            records = await call_records(address, "pbx-slow")
            assert [f.seq for f in legs(records, "customer")] == list(range(300))


async def send_frames(client: GenericClient, count: int) -> None:
    for _ in range(count):
        await client.audio("customer", b"\xff" * 64_000)  # the largest frames: fill socket buffers fast


async def test_an_unreachable_broker_ends_the_call_with_an_error_and_spools_the_dead_letter(tmp_path):
    spool = tmp_path / "dead-letters.jsonl"
    with own_broker() as (address, pid):
        await create_topics(address, partitions=1)
        config = gateway_config(
            address, broker_deadline_s=1.0, dead_letter_timeout_s=0.5, dead_letter_spool=str(spool)
        )
        async with open_gateway(config) as running:
            async with GenericClient(f"ws://127.0.0.1:{running.port}/v1/stream", BEARER) as client:
                await client.start("pbx-outage")
                await client.audio("customer", MULAW_20MS)
                os.kill(pid, signal.SIGSTOP)  # the broker stops answering: as good as unreachable
                try:
                    with contextlib.suppress(Exception):
                        for _ in range(500):
                            await client.audio("customer", MULAW_20MS)
                    error = await client.receive_json(timeout_s=DEADLINE_S)
                    code, _ = await client.wait_closed()
                finally:
                    os.kill(pid, signal.SIGCONT)
    assert error == {"type": "error", "reason": "broker_unavailable", "message": error["message"]}
    assert code == 1013
    assert "broker_unavailable" in spool.read_text()


async def test_stopping_the_gateway_ends_open_calls_as_gateway_shutdown(bootstrap):
    async with open_gateway(gateway_config(bootstrap)) as running:
        client = GenericClient(f"ws://127.0.0.1:{running.port}/v1/stream", BEARER)
        await client.__aenter__()
        await client.start("pbx-shutdown")
        await client.audio("customer", MULAW_20MS)
    code, _ = await client.wait_closed()
    assert code == 1001  # going away: the source may reconnect to another gateway
    assert (await call_records(bootstrap, "pbx-shutdown"))[-1].reason == "gateway_shutdown"


async def test_run_serves_metrics_on_its_configured_address_until_stopped(bootstrap):
    port = free_port()
    stop = asyncio.Event()
    running = asyncio.create_task(
        run(gateway_config(bootstrap, metrics_address=f"127.0.0.1:{port}"), stop=stop)
    )

    def scrape() -> str:
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()

    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert not running.done(), running.exception()
            try:
                body = await asyncio.to_thread(scrape)
                break
            except OSError:
                assert time.monotonic() < deadline, f"no /metrics on 127.0.0.1:{port} within {DEADLINE_S} s"
                await asyncio.sleep(0.05)
        assert "callscope_ingest_frames_total" in body
    finally:
        stop.set()
        await running
    with pytest.raises(OSError):
        await asyncio.to_thread(scrape)  # stopped with the gateway: the port is free again
