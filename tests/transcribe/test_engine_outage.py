"""A model server that drops: one line when the connection is lost, one when it is back with the
outage's length, and the leg's next turn is transcribed once the server answers again.

The server is the real `callscope transcribe serve` (RealtimeServer on Whisper tiny.en), closed
while a session is connected and started again on the same port; the session is the worker's
VllmSession over a real WebSocket, fed real speech (espeak-ng).
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from tests.calls import speak
from tests.conformance.peers import SERVE_MODEL, free_port
from transcribe import connector
from transcribe.engine_health import EngineHealth
from transcribe.realtime_client import Endpoint
from transcribe.serve import RealtimeServer, ServeConfig
from transcribe.session import FinalText, SessionError, SessionEvent
from transcribe.vllm_session import VllmSession, VllmSessionConfig
from transcribe.whisper_engine import WhisperEngine

FRAME_BYTES = 640  # 20 ms at 16 kHz, as the worker sends them
DEADLINE_S = 120.0


def _turn(text: str) -> bytes:
    silence = np.zeros(16_000, dtype=np.int16)  # 1 s: ends the turn before it
    return np.concatenate([silence, speak(text, 16_000), silence, silence]).astype("<i2").tobytes()


async def _feed(session: VllmSession, pcm: bytes) -> None:
    for i in range(0, len(pcm), FRAME_BYTES):
        await session.send_audio(pcm[i : i + FRAME_BYTES])


class _SignallingHealth(EngineHealth):
    """The real EngineHealth that also says when the server was found gone (no polling)."""

    def __init__(self) -> None:
        super().__init__()
        self.went_down = asyncio.Event()

    def lost(self, code: str) -> None:
        super().lost(code)
        self.went_down.set()


async def _next_final(events: asyncio.Queue[SessionEvent]) -> FinalText:
    while True:
        event = await events.get()
        assert not isinstance(event, SessionError), event
        if isinstance(event, FinalText):
            return event


async def test_a_dropped_model_server_is_one_line_each_way_and_the_call_goes_on(
    whisper_engine: WhisperEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="transcribe.engine_health")
    port = free_port()
    config = ServeConfig(port=port, model_name=SERVE_MODEL, max_sessions=2)
    health = _SignallingHealth()
    endpoint = Endpoint(f"ws://127.0.0.1:{port}/v1/realtime", SERVE_MODEL, open_timeout_s=5.0)
    server = RealtimeServer(whisper_engine, config)
    await server.start()
    session = VllmSession(VllmSessionConfig(connect=connector.websocket(endpoint)), health=health)
    events: asyncio.Queue[SessionEvent] = asyncio.Queue()

    async def read() -> None:
        async for event in session.events():
            await events.put(event)

    try:
        async with asyncio.timeout(DEADLINE_S), session, asyncio.TaskGroup() as tg:
            tg.create_task(read(), name="test-read")
            await _feed(session, _turn("I want to cancel my account."))
            first = await _next_final(events)
            assert "cancel" in first.text.lower()

            await server.close()  # the server goes: the session's open connection drops
            feeding = tg.create_task(_feed(session, _turn("Let me speak to a manager.")), name="test-feed")
            await health.went_down.wait()  # the session finds it gone at its next turn
            server = RealtimeServer(whisper_engine, config)
            await server.start()  # back on the same port

            second = await _next_final(events)
            await feeding
            await session.end_input()
    finally:
        await server.close()
    assert "manager" in second.text.lower()
    assert second.start_ms >= first.end_ms  # the next turn, not the first again
    lines = [(r.getMessage(), getattr(r, "outage_s", None)) for r in caplog.records]
    assert [m for m, _ in lines] == ["model server connection lost", "model server connection recovered"]
    assert lines[1][1] is not None and lines[1][1] > 0
    assert not health.down
