"""Replay: re-run analysis over stored calls with a chosen rule set; write the new events beside the old.

The stored final segments of each call (already redacted: the database never holds the raw
text) are fed, in call order, through a fresh AssistPolicy compiled from the given rule file.
Only what depends on the rule set is written: hints, alerts and the compliance checklist. Their
ids and keys carry the rule-set version, so a replay with a new version adds rows beside the
live ones (`origin = 'replay'`), and replaying the same version again changes nothing.
Sentiment, trends and conversation metrics do not depend on the rules and are left as stored.

Partials are not stored, so a replay sees finals only: a rule that fired live on a partial
fires here on the final of the same turn (`on_final = true`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from analyze.assist import AssistPolicy
from analyze.events import AgentHint, AssistEvent, ComplianceState, SupervisorAlert
from analyze.rules import RuleMatcher, RuleSet, parse_rules_yaml
from store.batch import merge
from store.models import Call, RuleSetVersion, Segment
from store.repository import Repository
from store.rows import AssistRow, Row, RuleVersionRow
from store.sink import row_of
from transcribe.events import (
    FinalSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
)

log = logging.getLogger(__name__)

MAX_CALLS_PER_RUN = 100_000


class ReplayError(ValueError):
    """A replay that must not run (unknown call, a version reused with other content); not retryable."""

    retryable = False


@dataclass(frozen=True, slots=True)
class ReplayResult:
    calls: int
    segments: int
    hints: int
    alerts: int
    checklists: int
    rule_version: str


def call_events(call: Call | None, call_id: str, segments: Sequence[Segment]) -> list[TranscriptEvent]:
    """A stored call as the transcript events that made it: start, finals in call order, end."""
    events: list[TranscriptEvent] = []
    if call is not None and call.started_at is not None:
        events.append(TranscriptCallStarted(call_id=call_id, started_at=call.started_at.timestamp()))
    for seg in sorted(segments, key=lambda s: (s.start_ms or 0, s.leg)):
        if seg.text is None:
            continue  # a sentiment whose final never arrived
        emitted = _epoch(seg.emitted_at)
        events.append(
            FinalSegment(
                call_id=call_id,
                leg=seg.leg,  # type: ignore[arg-type]
                segment_id=seg.segment_id,
                start_ms=seg.start_ms or 0,
                end_ms=seg.end_ms or 0,
                text=seg.text,
                confidence=seg.confidence,
                times=StageTimes(
                    audio_captured_at=_epoch(seg.audio_captured_at, emitted),
                    audio_received_at=_epoch(seg.audio_received_at, emitted),
                    emitted_at=emitted,
                    speech_ended_at=None if seg.speech_ended_at is None else seg.speech_ended_at.timestamp(),
                ),
            )
        )
    if call is not None and call.ended_at is not None:
        events.append(TranscriptCallEnded(call_id=call_id, ended_at=call.ended_at.timestamp()))
    return events


def rule_dependent(events: Iterable[AssistEvent]) -> list[AssistEvent]:
    """The events whose meaning depends on the rule set: what a replay writes."""
    return [e for e in events if isinstance(e, AgentHint | SupervisorAlert | ComplianceState)]


def replay_rows(events: Iterable[AssistEvent]) -> list[Row]:
    rows: list[Row] = []
    for event in rule_dependent(events):
        row = row_of(event)
        if isinstance(row, AssistRow):
            row = replace(row, origin="replay")
        if row is not None:
            rows.append(row)
    return rows


async def run_replay(
    engine: AsyncEngine,
    rules_path: Path,
    *,
    make_policy: Callable[[RuleSet], AssistPolicy] | None = None,
    call_ids: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Replay the given calls, or those started in [since, until); write unless `dry_run`."""
    content = await asyncio.to_thread(rules_path.read_text, encoding="utf-8")
    rule_set = parse_rules_yaml(content, source=str(rules_path))
    digest = hashlib.sha256(content.encode()).hexdigest()
    await _check_version(engine, rule_set.version, digest)
    build = make_policy or (lambda rules: AssistPolicy(RuleMatcher(rules), _vader()))
    ids = list(call_ids) or await _calls_between(engine, since, until)
    totals = {"segments": 0, "assist.hint": 0, "assist.alert": 0, "compliance.state": 0}
    repository = Repository(engine)
    for call_id in ids:
        call, segments = await _load_call(engine, call_id)
        if call is None and not segments:
            raise ReplayError(f"no stored call {call_id!r}")
        policy = build(rule_set)  # fresh per call: nothing carries over between calls
        produced: list[AssistEvent] = []
        for event in call_events(call, call_id, segments):
            produced += policy.on_event(event)
        kept = rule_dependent(produced)
        totals["segments"] += len(segments)
        for event in kept:
            totals[event.type] += 1
        if not dry_run:
            await repository.write(merge(replay_rows(kept)))
        log.info(
            "call replayed", extra={"call_id": call_id, "events": len(kept), "rule_version": rule_set.version}
        )
    if not dry_run:
        first_seen = datetime.now().astimezone()
        await repository.write(merge([RuleVersionRow(rule_set.version, first_seen, content, digest)]))
    return ReplayResult(
        calls=len(ids),
        segments=totals["segments"],
        hints=totals["assist.hint"],
        alerts=totals["assist.alert"],
        checklists=totals["compliance.state"],
        rule_version=rule_set.version,
    )


async def _check_version(engine: AsyncEngine, version: str, digest: str) -> None:
    async with engine.connect() as conn:
        known = await conn.scalar(select(RuleSetVersion.digest).where(RuleSetVersion.version == version))
    if known is not None and known != digest:
        raise ReplayError(
            f"rule-set version {version!r} is already stored with other content: bump 'version' in the file"
        )


async def _calls_between(engine: AsyncEngine, since: datetime | None, until: datetime | None) -> list[str]:
    query = select(Call.call_id).order_by(Call.started_at).limit(MAX_CALLS_PER_RUN)
    if since is not None:
        query = query.where(Call.started_at >= since)
    if until is not None:
        query = query.where(Call.started_at < until)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


async def _load_call(engine: AsyncEngine, call_id: str) -> tuple[Call | None, list[Segment]]:
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(engine) as session:
        call = await session.get(Call, call_id)
        segments = list((await session.execute(select(Segment).where(Segment.call_id == call_id))).scalars())
    return call, segments


def _epoch(value: datetime | None, default: float = 0.0) -> float:
    return default if value is None else value.timestamp()


def _vader():  # type: ignore[no-untyped-def]
    from analyze.sentiment import VaderScorer

    return VaderScorer()
