"""Fixtures shared across test modules. Keep additions small; the code lives in helper modules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from deploy.runtime import embedded_kafka, embedded_postgres
from store.migrate import migrate
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


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Root handlers as they were: a test that runs the CLI's logging set-up would otherwise leave a
    handler on pytest's captured stream, written to after that stream is closed."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    """A Kafka-protocol broker (Tansu) per test module, with no topics: a module creates its own."""
    with embedded_kafka() as address:
        yield address


@pytest.fixture
def fresh_bootstrap() -> Iterator[str]:
    """A broker of this test alone, for tests that start and restart workers on a clean broker."""
    with embedded_kafka() as address:
        yield address


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A throwaway PostgreSQL per test module (some modules stop and restart theirs)."""
    with embedded_postgres() as url:
        yield url


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The module's database, migrated to head."""
    await migrate(database_url)
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()
