"""Analytics tables (migration 0002) against a real PostgreSQL: redacted text, audit, metrics, checklists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from analyze.assist import AssistPolicy
from analyze.events import ComplianceState, ComplianceStep, RedactionAudit
from analyze.live import LiveSettings
from analyze.rules import RuleMatcher, load_rules
from analyze.sentiment import VaderScorer
from store.batch import merge
from store.models import (
    ComplianceStateRow,
    ConversationMetric,
    RedactionAuditRow,
    RuleSetVersion,
    Segment,
    SentimentTrendRow,
)
from store.repository import Repository
from store.sink import row_of
from tests import store_events as ev


async def write(engine: AsyncEngine, events: Sequence[Any]) -> None:
    rows = [row for row in (row_of(e) for e in events) if row is not None]
    await Repository(engine).write(merge(rows))


async def rows(engine: AsyncEngine, model: Any, call_id: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(model.__table__).where(model.call_id == call_id))).all())


def _policy_events(call_id: str) -> list[Any]:
    """A short call through the real policy: its metrics, trends and audit events."""
    policy = AssistPolicy(
        RuleMatcher(load_rules()), VaderScorer(), live=LiveSettings(metrics_interval_ms=5_000)
    )
    out: list[Any] = []
    for event in [
        ev.started(call_id),
        ev.final(call_id, "agent", 0, "Thanks for calling, how can I help?", end_ms=3_000),
        ev.final(call_id, "customer", 2_500, "My card is 4111 1111 1111 1111 and this is ridiculous", 9_000),
        ev.ended(call_id, at=ev.T0 + 12),
    ]:
        out += policy.on_event(event)
    return out


async def test_stored_segment_text_is_redacted_and_audited_by_the_store(engine: AsyncEngine) -> None:
    await write(engine, [ev.final("r1", "customer", 0, "my social is 123-45-6789 and email a.b@example.com")])
    (segment,) = await rows(engine, Segment, "r1")
    assert segment.text == "my social is [SSN] and email [EMAIL]"
    (audit,) = await rows(engine, RedactionAuditRow, "r1")
    assert (audit.stage, audit.counts) == ("store", {"email": 1, "ssn": 1})


async def test_policy_outputs_are_stored_once_however_often_they_are_written(engine: AsyncEngine) -> None:
    events = _policy_events("r2")
    assert any(isinstance(e, RedactionAudit) for e in events)
    for _ in range(2):  # a redelivered batch
        await write(engine, events)
    metrics = await rows(engine, ConversationMetric, "r2")
    assert [m.call_ended for m in sorted(metrics, key=lambda m: m.elapsed_ms)][-1] is True
    last = max(metrics, key=lambda m: m.elapsed_ms)
    assert last.elapsed_ms == 12_000 and last.overtalk_ms == 500
    assert last.customer["words"] == 11 and last.agent["talk_ms"] == 3_000
    trends = await rows(engine, SentimentTrendRow, "r2")
    assert {t.scope for t in trends if t.call_ended} == {"agent", "customer", "call"}
    audits = await rows(engine, RedactionAuditRow, "r2")
    assert [(a.stage, a.counts) for a in audits] == [("analyze", {"card": 1})]


def _checklist(status: str, emitted_at: float, version: str = "v1") -> ComplianceState:
    return ComplianceState(
        event_id=f"cmp-{status}-{version}",
        call_id="r3",
        rule_version=version,
        steps=(ComplianceStep(item_id="disclosure", status=status, at_ms=1_000),),  # type: ignore[arg-type]
        changed=("disclosure",),
        emitted_at=emitted_at,
    )


async def test_compliance_state_keeps_the_latest_status_and_a_replay_version_beside_it(
    engine: AsyncEngine,
) -> None:
    await write(engine, [_checklist("met", ev.T0 + 5)])
    await write(engine, [_checklist("pending", ev.T0 + 1)])  # an older event redelivered late
    await write(engine, [_checklist("missed", ev.T0 + 100, version="v2")])
    stored = {(r.rule_version, r.item_id): r.status for r in await rows(engine, ComplianceStateRow, "r3")}
    assert stored == {("v1", "disclosure"): "met", ("v2", "disclosure"): "missed"}
    async with engine.connect() as conn:
        versions = set((await conn.execute(select(RuleSetVersion.version))).scalars())
    assert {"v1", "v2"} <= versions
