"""The whole pipeline for end-to-end tests: real services, the three stages as CLI subprocesses.

`running_pipeline()` starts the embedded Tansu broker and PostgreSQL, runs `callscope transcribe`,
`analyze` and `store` as subprocesses, and taps the transcript, assist and dead-letter topics with
a plain consumer from the beginning, so a test can compare what the stages emitted with what
PostgreSQL holds. Every wait is a condition with a deadline; a timeout or a stage that died fails
with the tail of every stage's log and the folder of the whole logs; a call not stored in time says
which of its conditions is unmet (stored_gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from analyze.events import AgentHint, Sentiment, SupervisorAlert, parse_assist_event
from deploy.runtime import services
from deploy.stages import StageProcesses, stage_env, wait_until_ready
from pipeline.contract import InvalidEvent
from pipeline.deadletter import DeadLetter
from pipeline.topics import TOPICS
from store.models import Call, Segment
from store.queries import CallSummary, call_summary
from transcribe.events import FinalSegment, TranscriptCallEnded, parse_transcript_event

T = TypeVar("T")

PARTITIONS = 2
READY_DEADLINE_S = 180.0  # first start loads Whisper and faust on a busy 2-core box
STORED_DEADLINE_S = 240.0
QUIET_S = 2.0  # a stored call must stop changing (topics and rows) this long to count as complete
POLL_S = 0.5
LOG_TAIL_LINES = 25


@dataclass
class CallOnTopics:
    """What the stages emitted for one call, in topic order."""

    transcript: list[FinalSegment | TranscriptCallEnded] = field(default_factory=list)
    final_sentiments: set[str] = field(default_factory=set)  # segment ids
    triggered: dict[str, AgentHint | SupervisorAlert] = field(default_factory=dict)  # by event id
    assist_records: int = 0

    @property
    def finals(self) -> dict[str, FinalSegment]:
        return {e.segment_id: e for e in self.transcript if isinstance(e, FinalSegment)}

    @property
    def ends(self) -> list[TranscriptCallEnded]:
        return [e for e in self.transcript if isinstance(e, TranscriptCallEnded)]

    def finals_of_run(self, run: int) -> list[FinalSegment]:
        """Finals emitted between the (run-1)-th and the run-th call.ended (runs count from 1)."""
        runs: list[list[FinalSegment]] = [[]]
        for event in self.transcript:
            if isinstance(event, TranscriptCallEnded):
                runs.append([])
            else:
                runs[-1].append(event)
        return runs[run - 1]


class TopicTap:
    """A plain consumer reading the transcript, assist and dead-letter topics from offset 0."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self.calls: defaultdict[str, CallOnTopics] = defaultdict(CallOnTopics)
        self.dead_letters: list[DeadLetter] = []

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            topics = (TOPICS.transcripts, TOPICS.assist, TOPICS.deadletter)
            parts = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        self._take(tp.topic, record.value)
        finally:
            await consumer.stop()

    def _take(self, topic: str, value: bytes | None) -> None:
        try:
            if topic == TOPICS.deadletter:
                self.dead_letters.append(DeadLetter.model_validate_json(value or b""))
            elif topic == TOPICS.transcripts:
                event = parse_transcript_event(value)
                if isinstance(event, FinalSegment | TranscriptCallEnded):
                    self.calls[event.call_id].transcript.append(event)
            else:
                event = parse_assist_event(value)
                call = self.calls[event.call_id]
                call.assist_records += 1
                match event:
                    case Sentiment(final=True):
                        call.final_sentiments.add(event.segment_id)
                    case AgentHint() | SupervisorAlert():
                        call.triggered.setdefault(event.event_id, event)
        except (InvalidEvent, ValidationError):
            return  # the e2e tests put nothing malformed on these topics; the stages' own tests do


def _ids(ids: set[str], finals: dict[str, FinalSegment], shown: int = 5) -> str:
    """Ids with when their final went out (epoch s, as the stage logs' "ts")."""
    listed = sorted(ids, key=lambda i: finals[i].times.emitted_at if i in finals else 0.0)
    named = [f"{i} emitted {finals[i].times.emitted_at:.2f}" if i in finals else i for i in listed[:shown]]
    return ", ".join(named) + (f" and {len(listed) - shown} more" if len(listed) > shown else "")


def stored_gap(on_topics: CallOnTopics, summary: CallSummary | None, runs: int) -> str:
    """Why PostgreSQL does not yet hold what the topics carry for the call's `runs`-th run ("" if it does)."""
    if len(on_topics.ends) < runs:
        return f"call end {runs} not on the transcript topic yet ({len(on_topics.ends)} seen)"
    if summary is None or summary.call is None:
        return "call summary missing (no call row)"
    want_end = datetime.fromtimestamp(on_topics.ends[runs - 1].ended_at, tz=UTC)
    if summary.call.ended_at is None or abs((summary.call.ended_at - want_end).total_seconds()) > 0.001:
        return f"ended_at mismatch (stored {summary.call.ended_at}, topic end {runs}: {want_end})"
    finals = on_topics.finals
    stored = {s.segment_id for s in summary.segments}
    scored = {s.segment_id for s in summary.segments if s.sentiment_compound is not None}
    with_text = {i for i, f in finals.items() if f.text.strip()}
    stored_events = {e.event_id for e in summary.assist_events}
    gaps = []
    if ids := set(finals) - stored:
        gaps.append(f"{len(ids)} of {len(finals)} finals not stored ({_ids(ids, finals)})")
    if ids := with_text - on_topics.final_sentiments:
        gaps.append(
            f"{len(ids)} of {len(with_text)} finals without sentiment on the topic ({_ids(ids, finals)})"
        )
    if ids := (with_text & stored) - scored:
        gaps.append(f"{len(ids)} of {len(with_text)} stored segments without score ({_ids(ids, finals)})")
    if ids := set(on_topics.triggered) - stored_events:
        triggered = len(on_topics.triggered)
        gaps.append(f"{len(ids)} of {triggered} triggered assist events not stored ({_ids(ids, finals)})")
    return "; ".join(gaps)


@dataclass
class Pipeline:
    bootstrap: str
    stages: StageProcesses
    engine: AsyncEngine
    tap: TopicTap
    logdir: Path

    def log_tails(self) -> str:
        parts = []
        for path in sorted(self.logdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- {path.name} (last {len(lines)} lines) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def explain(self, message: str) -> str:
        """An assertion message with the stage logs' tails, so a CI failure says what the stages saw."""
        return f"{message}\n{self.log_tails()}"

    def check_stages(self) -> None:
        dead = [
            f"{s.name} (exit {s.proc.returncode})"
            for s in self.stages.stages
            if s.proc.returncode is not None
        ]
        assert not dead, self.explain(f"stage exited: {', '.join(dead)}")

    async def wait_for(
        self,
        what: str,
        probe: Callable[[], Awaitable[T | None]],
        deadline_s: float,
        unmet: Callable[[], str] | None = None,
    ) -> T:
        """Poll `probe` until it returns a truthy value; fail after `deadline_s` (saying what `unmet`
        returns, if given) or if a stage dies."""
        deadline = time.monotonic() + deadline_s
        while True:
            self.check_stages()
            result = await probe()
            if result:
                return result
            if time.monotonic() >= deadline:
                why = f": {unmet()}" if unmet else ""
                raise AssertionError(
                    self.explain(f"timed out after {deadline_s:.0f} s {what}{why}\nstage logs: {self.logdir}")
                )
            await asyncio.sleep(POLL_S)

    async def summary(self, call_id: str) -> CallSummary | None:
        return await call_summary(self.engine, call_id)

    async def wait_until_stored(
        self, call_id: str, *, runs: int = 1, deadline_s: float = STORED_DEADLINE_S
    ) -> CallSummary:
        """Wait until PostgreSQL holds the call's `runs`-th end and everything emitted for it, unchanged."""
        last: list[tuple[object, ...]] = []
        quiet_since = [time.monotonic()]
        unmet = ["not checked yet"]

        async def complete() -> CallSummary | None:
            on_topics = self.tap.calls[call_id]
            summary = await self.summary(call_id)
            state = (len(on_topics.transcript), on_topics.assist_records, summary)
            if not last or last[0] != state:
                last[:] = [state]
                quiet_since[0] = time.monotonic()
            quiet_s = time.monotonic() - quiet_since[0]
            unmet[0] = stored_gap(on_topics, summary, runs) or (
                f"not quiet yet ({quiet_s:.1f} of {QUIET_S:.0f} s unchanged)" if quiet_s < QUIET_S else ""
            )
            return None if unmet[0] else summary

        def why() -> str:
            letters = [f"{d.stage}:{d.reason}" for d in self.tap.dead_letters if d.key == call_id]
            return unmet[0] + (f"; its dead letters: {', '.join(letters)}" if letters else "")

        return await self.wait_for(f"for call {call_id} (run {runs}) to be stored", complete, deadline_s, why)

    async def segment_row_counts(self, call_id: str) -> dict[str, int]:
        """Rows per segment id for the call, text-less (sentiment-only) rows included."""
        query = (
            select(Segment.segment_id, func.count())
            .where(Segment.call_id == call_id)
            .group_by(Segment.segment_id)
        )
        async with self.engine.connect() as conn:
            return {row[0]: row[1] for row in (await conn.execute(query)).all()}

    async def call_row_count(self, call_id: str) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.count()).where(Call.call_id == call_id))).scalar_one()


@contextlib.asynccontextmanager
async def running_pipeline(logdir: Path) -> AsyncIterator[Pipeline]:
    """Services, the three stages (ready: each group Stable) and the topic tap; all stopped on exit."""
    async with services(None, None, PARTITIONS) as svc:
        stages = StageProcesses(
            logdir, stage_env(dict(os.environ), svc.kafka_bootstrap, svc.database_url, PARTITIONS)
        )
        engine = create_async_engine(svc.database_url)
        tap = TopicTap(svc.kafka_bootstrap)
        tapping = asyncio.create_task(tap.run(), name="e2e-topic-tap")
        pipeline = Pipeline(svc.kafka_bootstrap, stages, engine, tap, logdir)
        try:
            await stages.start()
            try:
                await wait_until_ready(svc.kafka_bootstrap, READY_DEADLINE_S)
            except TimeoutError:
                raise AssertionError(pipeline.explain("stages did not join their consumer groups")) from None
            pipeline.check_stages()
            yield pipeline
        finally:
            tapping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tapping
            await stages.stop()
            await engine.dispose()


class InjectingProducer:
    """A replay's producer that slips extra records onto the topic after its `after`-th record.

    Lets a test put malformed records in the middle of a call, in the call's own partition.
    """

    def __init__(self, producer: AIOKafkaProducer, after: int, extra: list[tuple[str, bytes]]) -> None:
        self._producer = producer
        self._after = after
        self._extra = extra
        self._sent = 0
        self._pending: list[asyncio.Future[object]] = []

    async def send(self, topic: str, value: bytes, **kwargs: object) -> asyncio.Future[object]:
        future = await self._producer.send(topic, value, **kwargs)
        self._sent += 1
        if self._sent == self._after:
            for key, extra in self._extra:
                self._pending.append(await self._producer.send(topic, extra, key=key.encode()))
        return future

    async def flush(self) -> None:
        await self._producer.flush()
        await asyncio.gather(*self._pending)

    @property
    def injected(self) -> bool:
        return self._sent >= self._after
