"""Which database errors a retry can fix (pipeline.retry.RetryPolicy says how long to wait)."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

# What a write or a migration can raise because of the database (or the way to it); `is_permanent`
# tells which of them no retry can fix. Anything else is a bug and propagates.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,  # refused or missing socket while the server is down
    TimeoutError,
)

# SQLSTATE classes that no retry can fix for the same rows: data exception (22), integrity
# constraint violation (23), program limit exceeded (54, e.g. an index row too large).
_PERMANENT_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


def is_permanent(error: BaseException) -> bool:
    """True when the database refused the rows themselves; False when it may work later."""
    if isinstance(error, (sa_exc.DataError, sa_exc.IntegrityError)):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        return sqlstate[:2] in _PERMANENT_SQLSTATE_CLASSES
    return False


def error_code(error: BaseException) -> str:
    """A short code for logs and dead letters: the SQLSTATE where there is one, else the type name."""
    if isinstance(error, sa_exc.DBAPIError):
        sqlstate = getattr(error.orig, "sqlstate", None)
        if sqlstate:
            return f"sqlstate_{sqlstate}"
        return type(error.orig).__name__
    return type(error).__name__
