"""Run the store's Alembic migrations programmatically (the worker at start, the CLI, the tests)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK_ID = 0x63616C6C  # "call"


def alembic_config() -> Config:
    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    # Several workers may start at once: the transaction-scoped lock makes the others wait and
    # then find the schema already at head. PostgreSQL DDL is transactional, so it is all or nothing.
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (default: the newest)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()
    log.info("store schema migrated", extra={"revision": revision})
