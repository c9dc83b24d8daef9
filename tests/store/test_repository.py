"""Schema and idempotent writes against a real PostgreSQL server (embedded)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from store.batch import merge
from store.errors import DATABASE_ERRORS, is_permanent
from store.migrate import migrate
from store.models import AssistEvent, Base, Call, LegError, Segment
from store.queries import call_summary
from store.repository import Repository
from store.sink import row_of
from tests import store_events as ev


async def write(engine: AsyncEngine, events: Sequence[Any]) -> None:
    rows = [row for row in (row_of(e) for e in events) if row is not None]
    await Repository(engine).write(merge(rows))


async def count(engine: AsyncEngine, model: Any, call_id: str) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(model).where(model.call_id == call_id))


async def segment(engine: AsyncEngine, segment_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(Segment.__table__).where(Segment.segment_id == segment_id))).one()


async def call_row(engine: AsyncEngine, call_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(Call.__table__).where(Call.call_id == call_id))).one()


async def test_migration_creates_exactly_the_models_schema(engine: AsyncEngine) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync_conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert version == "0003"


async def test_migrating_again_and_concurrently_is_harmless(database_url: str, engine: AsyncEngine) -> None:
    await asyncio.gather(migrate(database_url), migrate(database_url), migrate(database_url))
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1


async def test_writing_the_same_events_twice_leaves_one_row_each(engine: AsyncEngine) -> None:
    call_id = "repo-twice"
    seg = ev.final(call_id, "customer", 0, "I want to cancel")
    events = [
        ev.started(call_id),
        seg,
        ev.sentiment(seg, -0.3),
        ev.hint(seg, "retention", "Offer the loyalty discount"),
        ev.alert(seg, "churn", "Churn risk"),
        ev.leg_error(call_id),
        ev.ended(call_id),
    ]
    await write(engine, events)
    first = await segment(engine, seg.segment_id)
    await write(engine, events)
    counts = {
        model.__tablename__: await count(engine, model, call_id)
        for model in (Call, Segment, AssistEvent, LegError)
    }
    assert counts == {"calls": 1, "segments": 1, "assist_events": 2, "leg_errors": 1}  # a hint and an alert
    again = await segment(engine, seg.segment_id)
    assert again.stored_at == first.stored_at  # a replay does not move the first-write time


async def test_sentiment_before_its_final_ends_up_on_the_segment_row(engine: AsyncEngine) -> None:
    seg = ev.final("repo-sent-first", "customer", 0, "this is the third time I call")
    await write(engine, [ev.sentiment(seg, -0.6)])
    pending = await segment(engine, seg.segment_id)
    assert pending.text is None and pending.stored_at is None and pending.sentiment_compound == -0.6
    assert await call_summary(engine, seg.call_id) is None  # a sentiment alone is no segment yet

    await write(engine, [seg])
    row = await segment(engine, seg.segment_id)
    assert (row.text, row.sentiment_compound, row.start_ms) == (seg.text, -0.6, 0)
    assert row.stored_at is not None and row.sentiment_stored_at is not None


async def test_sentiment_after_its_final_ends_up_on_the_segment_row(engine: AsyncEngine) -> None:
    seg = ev.final("repo-sent-after", "agent", 500, "happy to help")
    await write(engine, [seg])
    await write(engine, [ev.sentiment(seg, 0.8)])
    row = await segment(engine, seg.segment_id)
    assert (row.text, row.sentiment_compound, row.sentiment_positive) == (seg.text, 0.8, 0.8)


async def test_replayed_final_with_new_text_replaces_text_and_keeps_sentiment(engine: AsyncEngine) -> None:
    seg = ev.final("repo-rescore", "customer", 0, "I want to cancel")
    await write(engine, [seg, ev.sentiment(seg, -0.2)])
    await write(engine, [ev.final("repo-rescore", "customer", 0, "I want to cancel today")])
    row = await segment(engine, seg.segment_id)
    assert (row.text, row.sentiment_compound) == ("I want to cancel today", -0.2)


async def test_call_ended_before_call_started_keeps_both(engine: AsyncEngine) -> None:
    call_id = "repo-end-first"
    await write(engine, [ev.ended(call_id, reason="abandoned")])
    half = await call_row(engine, call_id)
    assert half.started_at is None and half.end_reason == "abandoned"
    await write(engine, [ev.started(call_id, queue="sales")])
    row = await call_row(engine, call_id)
    assert row.ended_at is not None and row.end_reason == "abandoned"
    assert (
        row.started_at.timestamp() == ev.T0 and row.queue == "sales" and row.metadata == {"ani_region": "EU"}
    )
    assert row.updated_at > half.updated_at


async def test_first_firing_of_an_assist_event_is_the_stored_one(engine: AsyncEngine) -> None:
    p = ev.partial("repo-assist", "customer", 0, "cancel")
    f = ev.final("repo-assist", "customer", 0, "cancel my plan")
    await write(engine, [ev.hint(p, "retention", "Offer discount", on_final=False)])
    await write(engine, [ev.hint(f, "retention", "Offer discount", on_final=True)])
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(AssistEvent.on_final).where(AssistEvent.call_id == "repo-assist"))
        ).all()
    assert [r.on_final for r in rows] == [False]


async def test_call_summary_lists_final_segments_in_time_order_with_sentiment(engine: AsyncEngine) -> None:
    call_id = "repo-summary"
    s1 = ev.final(call_id, "agent", 0, "thanks for calling")
    s2 = ev.final(call_id, "customer", 1800, "my bill is wrong")
    s3 = ev.final(call_id, "agent", 4000, "let me check")
    await write(
        engine,
        [s3, s1, s2, ev.sentiment(s2, -0.5), ev.alert(s2, "billing", "Billing dispute"), ev.started(call_id)],
    )
    await write(engine, [ev.partial(call_id, "customer", 6000, "and also"), ev.ended(call_id)])

    summary = await call_summary(engine, call_id)
    assert summary is not None and summary.call is not None
    assert summary.call.agent_id == "agent-7" and summary.call.end_reason == "hangup"
    assert [(s.leg, s.start_ms, s.text) for s in summary.segments] == [
        ("agent", 0, "thanks for calling"),
        ("customer", 1800, "my bill is wrong"),
        ("agent", 4000, "let me check"),
    ]
    assert [s.sentiment_compound for s in summary.segments] == [None, -0.5, None]
    assert [(a.kind, a.payload) for a in summary.assist_events] == [("alert", "Billing dispute")]
    latency = summary.segments[0].store_latency_seconds
    assert latency is not None  # scripted timestamps are in the past: only its presence matters here
    async with engine.connect() as conn:
        assert await call_summary(conn, "no-such-call") is None


async def test_unreachable_database_is_a_retryable_error() -> None:
    engine = create_async_engine("postgresql+asyncpg://postgres:@/postgres?host=/nonexistent-socket-dir")
    try:
        with pytest.raises(DATABASE_ERRORS) as info:
            await write(engine, [ev.started("repo-unreachable")])
        assert not is_permanent(info.value)
    finally:
        await engine.dispose()


async def test_a_write_names_the_segments_whose_text_it_stored_first(engine: AsyncEngine) -> None:
    call_id = "r-first-texts"
    first, second = ev.final(call_id, "customer", 0, "hello"), ev.final(call_id, "agent", 2000, "hi there")
    repository = Repository(engine)

    def batch(*events: Any):
        return merge([row for row in (row_of(e) for e in events) if row is not None])

    # The second turn's sentiment lands before its final: a row without text, not a stored text.
    assert await repository.write(batch(ev.started(call_id), first, ev.sentiment(second, 0.4))) == {
        first.segment_id
    }
    # Re-sent after a takeover (or re-read after a restart): already stored; the new one is first.
    assert await repository.write(batch(first, second)) == {second.segment_id}
    assert await repository.write(batch(first, second)) == frozenset()
