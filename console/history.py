"""History and search from PostgreSQL: past calls with filters, full-text search over final segments.

Search uses segments.search_vector, the stored `to_tsvector('english', coalesce(text, ''))` of
migration 0003, GIN-indexed; the query text goes through websearch_to_tsquery, which accepts any
input without a syntax error. Access rules are pushed into SQL: an agent's query only ever reads their calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, false, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from console.access import Principal
from console.params import HistoryFilter, SearchQuery
from store.models import AssistEvent, Call, ComplianceStateRow, ConversationMetric, Segment
from store.queries import call_summary

TS_CONFIG = "english"
# The generated column of migration 0003 (the store's model does not map it: PostgreSQL fills it).
SEGMENT_TSVECTOR = literal_column("segments.search_vector", type_=TSVECTOR)
_HIT_START, _HIT_STOP = "\x02", "\x03"  # ts_headline markers; split into parts, never sent as HTML


def visible(who: Principal) -> ColumnElement[bool]:
    if who.panel_only:
        return false()
    if who.role == "admin":
        return true()
    if who.role == "supervisor":
        return Call.queue.in_(sorted(who.queues)) if who.queues else false()
    return Call.agent_id == who.agent_id


def _common(f: HistoryFilter | SearchQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.from_:
        where.append(Call.started_at >= f.from_)
    if f.to:
        where.append(Call.started_at <= f.to)
    if f.agent:
        where.append(Call.agent_id == f.agent)
    if f.queue:
        where.append(Call.queue == f.queue)
    return where


def _customer_sentiment(call_id: Any) -> Any:
    return (
        select(func.avg(Segment.sentiment_compound))
        .where(Segment.call_id == call_id, Segment.leg == "customer", Segment.text.is_not(None))
        .scalar_subquery()
    )


async def list_calls(engine: AsyncEngine, who: Principal, f: HistoryFilter) -> list[dict[str, Any]]:
    sentiment = _customer_sentiment(Call.call_id)
    alerts = (
        select(func.count())
        .where(AssistEvent.call_id == Call.call_id, AssistEvent.kind == "alert")
        .scalar_subquery()
    )
    missed = (
        select(func.count())
        .where(ComplianceStateRow.call_id == Call.call_id, ComplianceStateRow.status == "missed")
        .scalar_subquery()
    )
    where = [visible(who), *_common(f)]
    if f.end_reason:
        where.append(Call.end_reason == f.end_reason)
    if f.sentiment_below is not None:
        where.append(sentiment < f.sentiment_below)
    if f.rule:
        where.append(exists().where(AssistEvent.call_id == Call.call_id, AssistEvent.rule_id == f.rule))
    if f.compliance_missed is not None:
        where.append(missed > 0 if f.compliance_missed else missed == 0)
    query = (
        select(
            Call.call_id,
            Call.started_at,
            Call.ended_at,
            Call.agent_id,
            Call.queue,
            Call.direction,
            Call.end_reason,
            sentiment.label("customer_sentiment"),
            alerts.label("alerts"),
            missed.label("compliance_missed"),
        )
        .where(and_(*where))
        .order_by(Call.started_at.desc().nulls_last(), Call.call_id)
        .limit(f.limit)
        .offset(f.offset)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_jsonable(dict(row)) for row in rows]


async def search_segments(engine: AsyncEngine, who: Principal, f: SearchQuery) -> list[dict[str, Any]]:
    tsquery = func.websearch_to_tsquery(literal_column(f"'{TS_CONFIG}'::regconfig"), bindparam("q", f.q))
    where = [SEGMENT_TSVECTOR.op("@@")(tsquery), Segment.text.is_not(None), *_common(f)]
    if who.role != "admin" or who.panel_only:
        where.append(visible(who))  # segments of a call whose start is not stored yet: admins only
    if f.leg:
        where.append(Segment.leg == f.leg)
    hits = (
        select(
            Segment.segment_id,
            Segment.call_id,
            Segment.leg,
            Segment.start_ms,
            Segment.text,
            Call.agent_id,
            Call.queue,
            Call.started_at,
            func.ts_rank(SEGMENT_TSVECTOR, tsquery).label("rank"),
        )
        .select_from(Segment)
        .outerjoin(Call, Call.call_id == Segment.call_id)
        .where(and_(*where))
        .order_by(literal_column("rank").desc(), Segment.call_id, Segment.start_ms)
        .limit(f.limit)
        .subquery()
    )
    headline = func.ts_headline(
        literal_column(f"'{TS_CONFIG}'::regconfig"),
        hits.c.text,
        tsquery,
        f"StartSel={_HIT_START}, StopSel={_HIT_STOP}, MaxWords=30, MinWords=12",
    )
    query = select(*(c for c in hits.c if c.name != "text"), headline.label("snippet")).order_by(
        hits.c.rank.desc(), hits.c.call_id, hits.c.start_ms
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_jsonable(dict(row) | {"snippet": snippet_parts(row["snippet"])}) for row in rows]


def snippet_parts(headline: str) -> list[dict[str, object]]:
    """ts_headline output as [{text, hit}], so the page renders matches without parsing HTML."""
    parts: list[dict[str, object]] = []
    for i, piece in enumerate(headline.split(_HIT_START)):
        text, sep, rest = piece.partition(_HIT_STOP) if i else ("", "", piece)
        if sep:
            parts.append({"text": text, "hit": True})
        if rest:
            parts.append({"text": rest, "hit": False})
    return parts


async def stored_call(engine: AsyncEngine, call_id: str) -> dict[str, Any] | None:
    """What the store holds of one call, in the shape of the live call view."""
    summary = await call_summary(engine, call_id)
    if summary is None:
        return None
    async with engine.connect() as conn:
        steps = (
            (
                await conn.execute(
                    select(
                        ComplianceStateRow.item_id,
                        ComplianceStateRow.status,
                        ComplianceStateRow.at_ms,
                        ComplianceStateRow.rule_version,
                    )
                    .where(ComplianceStateRow.call_id == call_id)
                    .order_by(ComplianceStateRow.item_id)
                )
            )
            .mappings()
            .all()
        )
        metric = (
            (
                await conn.execute(
                    select(ConversationMetric.__table__)
                    .where(ConversationMetric.call_id == call_id)
                    .order_by(ConversationMetric.elapsed_ms.desc())
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
    call = summary.call
    lines = [
        {
            "segment_id": s.segment_id,
            "leg": s.leg,
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "text": s.text,
            "final": True,
            "sentiment": s.sentiment_compound,
        }
        for s in summary.segments
    ]
    series: dict[str, list[tuple[int, float]]] = {"agent": [], "customer": []}
    for s in summary.segments:
        if s.sentiment_compound is not None:
            series[s.leg].append((s.start_ms, round(s.sentiment_compound, 3)))
    starts = {s.segment_id: s.start_ms for s in summary.segments}
    marks = [
        {
            "event_id": a.event_id,
            "kind": a.kind,
            "leg": a.leg,
            "segment_id": a.segment_id,
            "rule_id": a.rule_id,
            "rule_version": a.rule_version,
            "matched": a.matched,
            "matched_by": "",
            "category": "",
            "before_turn_end": not a.on_final,
            "text": a.payload,
            "severity": a.severity,
            "emitted_at": a.emitted_at.timestamp(),
            "at_ms": starts.get(a.segment_id),
        }
        for a in summary.assist_events
    ]
    metrics = None
    if metric is not None:
        metrics = {
            k: metric[k]
            for k in (
                "elapsed_ms",
                "talk_ms",
                "non_talk_ms",
                "longest_silence_ms",
                "overtalk_ms",
                "interruptions",
                "agent",
                "customer",
                "call_ended",
            )
        }
    return _jsonable(
        {
            "stored": True,
            "call": {
                "call_id": call_id,
                "agent_id": call.agent_id if call else None,
                "queue": call.queue if call else None,
                "direction": call.direction if call else None,
                "source": call.source if call else None,
                "started_at": call.started_at.timestamp() if call and call.started_at else None,
                "ended_at": call.ended_at.timestamp() if call and call.ended_at else None,
                "end_reason": call.end_reason if call else None,
                "ended": bool(call and call.ended_at),
                "alerts": sum(1 for m in marks if m["kind"] == "alert"),
            },
            "lines": lines,
            "marks": marks,
            "sentiment_series": series,
            "compliance": {
                "rule_version": steps[0]["rule_version"] if steps else "",
                "steps": [
                    {"item_id": s["item_id"], "status": s["status"], "at_ms": s["at_ms"]} for s in steps
                ],
            },
            "metrics": metrics,
            "latency": {},
            "leg_errors": [
                {"leg": e.leg, "code": e.code, "at": e.at.timestamp()} for e in summary.leg_errors
            ],
        }
    )


async def call_owner(engine: AsyncEngine, call_id: str) -> tuple[bool, str | None, str | None]:
    """(stored at all, agent_id, queue) of a stored call, for the access check."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(Call.agent_id, Call.queue).where(Call.call_id == call_id))).first()
        if row is not None:
            return True, row.agent_id, row.queue
        any_segment = (
            await conn.execute(select(Segment.segment_id).where(Segment.call_id == call_id).limit(1))
        ).first()
    return any_segment is not None, None, None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
