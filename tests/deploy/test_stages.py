"""The stages as subprocesses of the demo, the benchmarks and the e2e tests: their environment and
how a signal to the parent stops what it started."""

from __future__ import annotations

import asyncio

import pytest

from deploy.stages import cancel_on, stage_env


def test_stage_subprocesses_get_the_services_by_their_callscope_names_and_free_metrics_ports() -> None:
    caller = {"CALLSCOPE_TRANSCRIBE_METRICS_ADDRESS": "127.0.0.1:9402", "PATH": "/usr/bin"}

    env = stage_env(caller, "127.0.0.1:19092", "postgresql+asyncpg://u@h/db", 3)

    assert env["CALLSCOPE_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert env["CALLSCOPE_DATABASE_URL"] == "postgresql+asyncpg://u@h/db"
    assert env["CALLSCOPE_PARTITIONS"] == "3"
    for stage in ("INGEST", "TRANSCRIBE", "ANALYZE", "STORE"):
        # Several processes of one stage, or a stage already serving on this box, never collide.
        assert env[f"CALLSCOPE_{stage}_METRICS_ADDRESS"] == "127.0.0.1:0"
    assert env["PATH"] == "/usr/bin" and caller["CALLSCOPE_TRANSCRIBE_METRICS_ADDRESS"] == "127.0.0.1:9402"
    assert not {"KAFKA_BOOTSTRAP", "DATABASE_URL"} & set(env) - set(caller)


async def test_work_that_ends_before_the_stop_returns_its_result() -> None:
    async def work() -> int:
        return 7

    assert await cancel_on(asyncio.Event(), work()) == 7


async def test_a_stop_cancels_the_work_through_its_finally_and_raises_cancelled() -> None:
    stop, started, cleaned_up = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never set: only a cancel ends it
        finally:
            cleaned_up.set()

    async def signal_when_started() -> None:
        await started.wait()
        stop.set()

    stopper = asyncio.create_task(signal_when_started())
    with pytest.raises(asyncio.CancelledError):
        await cancel_on(stop, work())
    await stopper
    assert cleaned_up.is_set()
