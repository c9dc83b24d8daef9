"""Telephony sources end to end: real speech sent by a `websockets` client of each protocol, through
the gateway, the real broker, the transcribe, analyze and store stages, to final segments in
PostgreSQL. One pipeline (tests/e2e/running.py) and one gateway serve the module."""

from __future__ import annotations

import asyncio
import base64
import uuid

import jiwer
import numpy as np
import pytest

from bench.clients import AudioHookClient, GenericClient, TwilioClient, interleave
from ingest.config import GatewayConfig
from ingest.gateway import open_gateway
from ingest.wavsource import mulaw_encode, resample
from tests.e2e.running import Pipeline
from tests.speech import librivox_utterances, normalise_text

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR")]

TOKEN, API_KEY, BEARER = "e2e-twilio-token", "e2e-api-key", "e2e-bearer"
SECRET = base64.b64encode(b"e2e audiohook client secret 32 b").decode()
SPEED = 1.0  # real time, as a telephony source sends
MAX_WER = 0.25


class Conversation:
    """Customer speaks one LibriVox line, then the agent another: 16 kHz mono per leg."""

    def __init__(self) -> None:
        by_name = {u.name.rsplit("-", 1)[1]: u for u in librivox_utterances()}
        self.customer_line, self.agent_line = by_name["0880"], by_name["0930"]
        pause = np.zeros(16_000, dtype=np.int16)  # 1 s: longer than the stage's end-of-turn silence
        self.customer = np.concatenate(
            [pause, self.customer_line.samples, pause, np.zeros_like(self.agent_line.samples), pause]
        )
        self.agent = np.concatenate(
            [pause, np.zeros_like(self.customer_line.samples), pause, self.agent_line.samples, pause]
        )
        self.reference = f"{self.customer_line.text} {self.agent_line.text}"

    def frames(self, codec: str) -> list[tuple[bytes, bytes]]:
        """(customer, agent) 20 ms frames: mu-law 8 kHz or PCM16 16 kHz."""
        if codec == "mulaw":
            customer = mulaw_encode(resample(self.customer, 16_000, 8_000))
            agent = mulaw_encode(resample(self.agent, 16_000, 8_000))
            step = 160
        else:
            customer, agent, step = (
                self.customer.astype("<i2").tobytes(),
                self.agent.astype("<i2").tobytes(),
                640,
            )
        n = min(len(customer), len(agent)) // step
        return [(customer[i * step : (i + 1) * step], agent[i * step : (i + 1) * step]) for i in range(n)]


@pytest.fixture(scope="module")
async def gateway(pipeline: Pipeline):
    config = GatewayConfig(
        kafka_bootstrap=pipeline.bootstrap,
        port=0,
        twilio_auth_token=TOKEN,
        twilio_public_url="wss://gateway.test",
        audiohook_api_keys={API_KEY: SECRET},
        generic_tokens=[BEARER],
    )
    async with open_gateway(config) as running:
        yield f"ws://127.0.0.1:{running.port}"


async def paced(frames, send) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, start + n * 0.02 / SPEED - loop.time()))
        await send(n, frame)


async def assert_stored(pipeline: Pipeline, capsys, call_id: str, source: str) -> None:
    summary = await pipeline.wait_until_stored(call_id)
    assert summary.call is not None and summary.call.source == source and summary.call.end_reason == "hangup"
    legs = {s.leg for s in summary.segments}
    assert legs == {"customer", "agent"}, pipeline.explain(f"{call_id}: segments on legs {legs}")
    hypothesis = normalise_text(" ".join(s.text for s in sorted(summary.segments, key=lambda s: s.start_ms)))
    wer = jiwer.wer(Conversation().reference, hypothesis)
    with capsys.disabled():
        print(
            f"\n  {source} via gateway: WER {wer:.1%} over {len(summary.segments)} stored segments",
            flush=True,
        )
    assert wer <= MAX_WER, pipeline.explain(f"{call_id}: WER {wer:.1%}: {hypothesis!r}")


async def test_twilio_call_is_transcribed_and_stored(pipeline, gateway, capsys):
    call_sid = "CA" + uuid.uuid4().hex
    async with TwilioClient(
        f"{gateway}/twilio", TOKEN, call_sid, signed_url="wss://gateway.test/twilio"
    ) as client:
        await client.start()

        async def send(n: int, frame: tuple[bytes, bytes]) -> None:
            await client.media("inbound", frame[0], n * 20)
            await client.media("outbound", frame[1], n * 20)

        await paced(Conversation().frames("mulaw"), send)
        await client.stop()
        await client.wait_closed()
    await assert_stored(pipeline, capsys, client.call_id, "twilio")


async def test_audiohook_call_is_transcribed_and_stored(pipeline, gateway, capsys):
    async with AudioHookClient(f"{gateway}/audiohook", API_KEY, SECRET) as client:
        conversation = str(uuid.uuid4())
        assert (await client.open(conversation))["type"] == "opened"

        async def send(n: int, frame: tuple[bytes, bytes]) -> None:
            await client.audio(interleave(frame[0], frame[1]))

        await paced(Conversation().frames("mulaw"), send)
        assert (await client.close())["type"] == "closed"
    await assert_stored(pipeline, capsys, f"{conversation}:{client.session_id}", "audiohook")


async def test_generic_call_is_transcribed_and_stored(pipeline, gateway, capsys):
    call_id = f"pbx-{uuid.uuid4().hex[:12]}"
    async with GenericClient(f"{gateway}/v1/stream", BEARER) as client:
        await client.start(call_id, "pcm16", 16_000, agent_id="agent-7", queue="billing")

        async def send(n: int, frame: tuple[bytes, bytes]) -> None:
            await client.audio("customer", frame[0])
            await client.audio("agent", frame[1])

        await paced(Conversation().frames("pcm16"), send)
        assert (await client.end())["type"] == "ended"
    await assert_stored(pipeline, capsys, call_id, "generic")
