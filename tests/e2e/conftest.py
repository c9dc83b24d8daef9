"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.running import Pipeline, running_pipeline


@pytest.fixture(scope="module")
async def pipeline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    """The whole pipeline (broker, database, the three stages as processes) for one test module."""
    logs = tmp_path_factory.mktemp(f"{request.module.__name__.rpartition('.')[2]}-stage-logs")
    async with running_pipeline(logs) as running:
        yield running
