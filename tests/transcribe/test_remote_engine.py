"""Which engine a worker uses, and a realtime session over SageMaker through the connection seam.

CALLSCOPE_TRANSCRIBE_ENGINE picks the embedded engine, a `/v1/realtime` WebSocket, or vLLM behind
a SageMaker endpoint; the last two run the same VllmSession, which only sees `config.connect`.
The SageMaker side is the in-memory RealtimeStreamFake (the transport itself is tested in
test_transcribe_sagemaker_transport.py, and through the real bridge in test_sagemaker_bridge.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection, serve

from tests.sagemaker_fakes import RealtimeStreamFake
from transcribe.config import TranscribeConfig
from transcribe.engines import sagemaker_session_factory, session_factory_for
from transcribe.realtime_client import RealtimeConnection
from transcribe.realtime_turns import TurnBook, Utterance
from transcribe.sagemaker_transport import SageMakerClientMissing, SageMakerConnection
from transcribe.segmenter import TurnEnded, TurnStarted
from transcribe.session import FinalText, PartialText, SessionError, SessionEvent
from transcribe.vllm_session import VllmSession

SAGEMAKER = {
    "engine": "sagemaker",
    "sagemaker_endpoint_name": "callscope-voxtral",
    "sagemaker_region": "eu-west-1",
    "vllm_model": "tiny-voxtral-rt",
    "vllm_retry_base_delay_s": 1e-6,  # reconnect at once: no real sleeps in unit tests
}


class LoudnessVad:
    """Stand-in for VadStream: speech wherever a 512-sample window is loud."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> list[float]:
        audio = np.concatenate([self._pending, samples])
        complete = len(audio) // 512 * 512
        self._pending = audio[complete:]
        windows = audio[:complete].reshape(-1, 512)
        return [0.9 if float(np.abs(w).mean()) > 0.05 else 0.0 for w in windows]


def two_turns() -> bytes:
    """1 s silence, 1.5 s tone, 1 s silence, 1.5 s tone, 1 s silence: PCM16 at 16 kHz."""
    silence = np.zeros(16_000, dtype=np.int16)
    tone = (8_000 * np.sin(np.arange(24_000) * 2 * np.pi * 220 / 16_000)).astype(np.int16)
    return np.concatenate([silence, tone, silence, tone, silence]).astype("<i2").tobytes()


async def transcribe(session: VllmSession, pcm: bytes) -> list[SessionEvent]:
    async def feed() -> None:
        for i in range(0, len(pcm), 640):  # 20 ms frames, as the worker sends them
            await session.send_audio(pcm[i : i + 640])
        await session.end_input()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(feed(), name="test-feed")
        events = [event async for event in session.events()]
    return events


def finals(events: list[SessionEvent]) -> list[FinalText]:
    return [e for e in events if isinstance(e, FinalText)]


# -- selection -----------------------------------------------------------------------------------


def test_sagemaker_engine_reads_endpoint_and_aws_region_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_ENGINE", "sagemaker")
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_SAGEMAKER_ENDPOINT_NAME", "callscope-voxtral")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    config = TranscribeConfig()

    assert (config.engine, config.sagemaker_endpoint_name, config.sagemaker_region) == (
        "sagemaker",
        "callscope-voxtral",
        "eu-west-1",
    )


def test_sagemaker_engine_without_endpoint_name_fails_validation_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="CALLSCOPE_TRANSCRIBE_SAGEMAKER_ENDPOINT_NAME"):
        TranscribeConfig(engine="sagemaker", sagemaker_region="eu-west-1")


@pytest.mark.skipif(
    importlib.util.find_spec("aws_sdk_sagemaker_runtime_http2") is not None,
    reason="the SageMaker HTTP/2 client is installed here",
)
def test_sagemaker_worker_without_the_http2_client_fails_at_start_naming_the_extra() -> None:
    with pytest.raises(SageMakerClientMissing, match=r"callscope\[sagemaker-stream\]"):
        session_factory_for(TranscribeConfig(**SAGEMAKER))


@pytest.fixture
async def realtime_stub() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[str | None, dict]]]]:
    """A loopback /v1/realtime server that says session.created and records (auth, first event)."""
    seen: asyncio.Queue[tuple[str | None, dict]] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "id": "sess-stub", "created": 0}))
        assert ws.request is not None
        seen.put_nowait((ws.request.headers.get("Authorization"), json.loads(await ws.recv())))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = list(server.sockets)[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/realtime", seen


async def test_vllm_engine_sessions_connect_over_a_websocket_with_model_and_token(realtime_stub) -> None:
    url, seen = realtime_stub
    config = TranscribeConfig(engine="vllm", vllm_url=url, vllm_model="voxtral", vllm_api_key="k")

    session = session_factory_for(config)(call_id="c1", leg="agent")
    connection = await session.config.connect()
    try:
        assert isinstance(session, VllmSession) and isinstance(connection, RealtimeConnection)
        first = await asyncio.wait_for(seen.get(), 10)
        assert first == ("Bearer k", {"type": "session.update", "model": "voxtral"})
    finally:
        await connection.close()


async def test_sagemaker_engine_sessions_connect_to_the_configured_endpoint() -> None:
    opened: list[RealtimeStreamFake] = []
    factory = sagemaker_session_factory(
        TranscribeConfig(**SAGEMAKER, sagemaker_target_variant="blue"), RealtimeStreamFake.opener(opened)
    )

    connection = await factory(call_id="c1", leg="agent").config.connect()

    assert isinstance(connection, SageMakerConnection)
    endpoint = opened[0].endpoint
    assert (endpoint.endpoint_name, endpoint.region, endpoint.target_variant, endpoint.model) == (
        "callscope-voxtral",
        "eu-west-1",
        "blue",
        "tiny-voxtral-rt",
    )
    assert opened[0].sent == [{"type": "session.update", "model": "tiny-voxtral-rt"}]


# -- a session over SageMaker ------------------------------------------------------------------


async def test_session_over_sagemaker_gives_one_final_per_turn_on_one_stream() -> None:
    opened: list[RealtimeStreamFake] = []
    config = TranscribeConfig(**SAGEMAKER).vllm_session(
        TranscribeConfig(**SAGEMAKER).realtime_connect(opener=RealtimeStreamFake.opener(opened))
    )

    async with VllmSession(config, vad=LoudnessVad()) as session:  # type: ignore[arg-type]
        events = await transcribe(session, two_turns())

    assert not [e for e in events if isinstance(e, SessionError)]
    got = finals(events)
    assert len(got) == 2 and all(f.text.startswith("w0 w1") for f in got)
    assert 700 <= got[0].start_ms < got[0].end_ms <= got[1].start_ms < got[1].end_ms <= 6_000
    assert [p.revision for p in events if isinstance(p, PartialText)][:2] == [0, 1]
    assert len(opened) == 1 and opened[0].stray_finals == 0
    commits = [e.get("final") for e in opened[0].sent if e["type"] == "input_audio_buffer.commit"]
    assert commits == [False, True, False, True]  # each commit only after the previous done


async def test_session_over_sagemaker_reopens_a_dropped_stream_and_replays_the_turn_once() -> None:
    reference: list[RealtimeStreamFake] = []
    dropped: list[RealtimeStreamFake] = []
    sessions = []
    for opened, drop in ((reference, None), (dropped, 5)):
        opener = RealtimeStreamFake.opener(opened, drop_first_after=drop)
        config = TranscribeConfig(**SAGEMAKER).vllm_session(
            TranscribeConfig(**SAGEMAKER).realtime_connect(opener=opener)
        )
        async with VllmSession(config, vad=LoudnessVad()) as session:  # type: ignore[arg-type]
            sessions.append(finals(await transcribe(session, two_turns())))

    clean, replayed = sessions
    assert len(dropped) == 2 and not dropped[0].utterance_samples  # the first stream ended mid-turn
    assert [(f.start_ms, f.end_ms) for f in replayed] == [(f.start_ms, f.end_ms) for f in clean]
    assert dropped[1].utterance_samples == reference[0].utterance_samples  # whole turns, no gap
    assert [f.text for f in replayed] == [f.text for f in clean]


# -- the bookkeeping, pure ------------------------------------------------------------------------


def test_a_turn_the_server_ends_early_goes_on_as_a_new_turn_from_where_sending_stopped() -> None:
    book = TurnBook(max_turn_samples=16_000 * 30)
    book.apply(TurnStarted(1_000))
    book.apply(TurnEnded(1_000, 90_000, "silence"))
    turn = book.turns[0]
    cut_short = Utterance(sent=60_000)  # done came before our final: max_model_len

    book.finish(turn, cut_short)

    assert [(t.start, t.end) for t in book.turns] == [(1_000, 60_000), (60_000, 90_000)]
    book.drop_oldest()
    assert book.first_unsent(book.turns[0]) == 60_000 and book.needs_sending(book.turns[0])


def test_a_long_open_turn_is_cut_at_the_current_position_without_overlap() -> None:
    book = TurnBook(max_turn_samples=16_000)
    book.apply(TurnStarted(0))

    book.cut_long_turn(8_000)
    book.cut_long_turn(16_000)

    assert [(t.start, t.end) for t in book.turns] == [(0, 16_000), (16_000, None)]
    assert book.keep_from(segmenter_keeps=20_000) == 0


def test_a_partial_comes_when_a_delta_opens_a_new_word_once_per_piece_of_audio() -> None:
    utterance = Utterance(sent=1_600)

    assert [utterance.add_delta(d) for d in (" hel", "lo", " wor")] == [None, None, "hello"]
    assert utterance.add_delta(" again") is None  # no new audio sent since the last partial
    utterance.sent = 3_200
    assert utterance.add_delta(" x") == "hello wor again"
    assert utterance.text == " hello wor again x"
