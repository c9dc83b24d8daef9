"""Alembic environment: runs on a connection handed over by `store.migrate`, or on CALLSCOPE_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def run_offline() -> None:
    context.configure(
        url=os.environ.get("CALLSCOPE_DATABASE_URL", "postgresql+asyncpg://"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("CALLSCOPE_DATABASE_URL")
    if not url:
        raise SystemExit("set CALLSCOPE_DATABASE_URL (postgresql+asyncpg://...) to run store migrations")
    asyncio.run(_run_with_url(url))


if context.is_offline_mode():
    run_offline()
else:
    run_online()
