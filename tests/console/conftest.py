"""Fixtures of the console tests: users, a console served on a real socket, a producer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.console.live import PASSWORD, ConsoleServer, serve_console, write_users


@pytest.fixture(scope="module")
def users_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_users(tmp_path_factory.mktemp("console") / "users.yaml")


@pytest.fixture(scope="module")
async def console_server(
    bootstrap: str, engine: AsyncEngine, database_url: str, users_path: Path
) -> AsyncIterator[ConsoleServer]:
    async with serve_console(bootstrap, users_path, database_url=database_url) as server:
        yield server


@pytest.fixture(scope="module")
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def password() -> str:
    return PASSWORD


__all__ = ["asyncio"]
