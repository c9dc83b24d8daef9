"""The store's latency counts first writes only, and records after a call's end are counted and
stored: real broker (Tansu), real PostgreSQL, the worker as `callscope store` runs it."""

from __future__ import annotations

from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from store.config import StoreConfig
from store.models import Segment
from tests import store_events as ev
from tests.store.test_worker import config, eventually, produce, worker_running  # noqa: F401 (fixture)


def _value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def _segments(engine: AsyncEngine, call_id: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(Segment).where(Segment.call_id == call_id)
        return int(await conn.scalar(query) or 0)


async def test_a_resent_final_is_no_latency_and_a_record_after_the_end_is_counted_and_stored(
    config: StoreConfig,  # noqa: F811 (the fixture imported above)
    engine: AsyncEngine,
) -> None:
    call_id = "w-first-writes"
    first, second = ev.final(call_id, "customer", 0, "hello"), ev.final(call_id, "agent", 2000, "hi there")
    late = ev.final(call_id, "customer", 4000, "one more thing")
    before = {
        name: _value(name)
        for name in (
            "callscope_store_final_to_row_seconds_count",
            "callscope_store_segments_resent_total",
            "callscope_store_records_after_call_end_total",
        )
    }
    async with worker_running(config):
        await produce(config, [ev.started(call_id), first, second])
        await eventually(lambda: _equals(_segments(engine, call_id), 2))
        # A worker that took the call over sends the first final again, then the call ends, then
        # a segment of the ended call arrives.
        await produce(config, [first, ev.ended(call_id), late])
        await eventually(lambda: _equals(_segments(engine, call_id), 3))

    after = {name: _value(name) - value for name, value in before.items()}
    assert after == {
        "callscope_store_final_to_row_seconds_count": 3,  # first, second, late: each written once first
        "callscope_store_segments_resent_total": 1,
        "callscope_store_records_after_call_end_total": 1,
    }


async def _equals(actual, wanted: int) -> bool:
    return await actual == wanted
