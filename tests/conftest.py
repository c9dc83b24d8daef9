"""Fixtures shared across test modules. Keep additions small; the code lives in helper modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conformance.peers import SKIP_REASON, Peer, serve_peer, vllm_peer, vllm_peer_available


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """The real vLLM server on CPU (tiny random Voxtral-Realtime), started once per run."""
    if not vllm_peer_available():
        print(SKIP_REASON)
        pytest.skip(SKIP_REASON)
    with vllm_peer(tmp_path_factory.mktemp("vllm-peer")) as peer:
        yield peer


@pytest.fixture(scope="session")
async def serve_server() -> AsyncIterator[Peer]:
    """`callscope transcribe serve` (Whisper tiny.en) in this process, started once per run."""
    async with serve_peer() as peer:
        yield peer
