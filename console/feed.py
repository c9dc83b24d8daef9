"""The console's live feed: its own consumer of the transcript and assist topics, no group.

Every replica assigns itself every partition, so each sees every call. On start it reads back
`readback_s` of history (by timestamp: Tansu's ListOffsets LATEST is off by a batch, and
by-timestamp lookups are exact), so a console started mid-call shows that call so far.
A broker that goes away is reported on the page and retried; the feed then reads back again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from analyze.events import parse_assist_event
from console import metrics
from console.agent_log import AgentLog
from console.changes import Changes
from console.live_state import AgentItem, LiveState
from pipeline.contract import InvalidEvent
from pipeline.retry import RetryPolicy
from transcribe.events import parse_transcript_event

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 3.0
STOP_TIMEOUT_S = 5.0
REWIND_MARGIN_MS = 5000
FETCH_MAX_WAIT_MS = 50


@dataclass
class FeedStatus:
    state: str = "starting"  # starting | waiting_for_topics | live | broker_unavailable
    since: float = 0.0
    records: int = 0

    def view(self) -> dict[str, object]:
        return {"state": self.state, "since": self.since, "records": self.records}


class Hub:
    """Where folded events land: the live state, the agents' logs and the version streams wait on."""

    def __init__(self, state: LiveState, agents: AgentLog, changes: Changes) -> None:
        self.state = state
        self.agents = agents
        self.changes = changes
        self.status = FeedStatus(since=time.time())
        self.status_version = 0

    def set_status(self, state: str) -> None:
        if state != self.status.state:
            self.status.state, self.status.since = state, time.time()
            log.info("live feed state", extra={"state": state})
            metrics.FEED_UP.set(1 if state == "live" else 0)
            self.status_version += 1
            self.changes.publish(self.state._bump())

    def fold(self, topic_kind: str, raw: bytes | None, now: float) -> None:
        try:
            if topic_kind == "transcripts":
                items = self.state.fold_transcript(parse_transcript_event(raw), now=now)
            else:
                items = self.state.fold_assist(parse_assist_event(raw), now=now)
        except InvalidEvent as exc:
            metrics.EVENTS_REJECTED.labels(topic_kind, exc.reason).inc()
            return
        except Exception as exc:  # a bug folding one event must not take every page down with it
            metrics.EVENTS_REJECTED.labels(topic_kind, "fold_error").inc()
            log.error("event not folded", extra={"topic": topic_kind, "error": type(exc).__name__})
            return
        metrics.EVENTS_FOLDED.labels(topic_kind).inc()
        self.status.records += 1
        for item in items:
            self._to_agent(item)

    def _to_agent(self, item: AgentItem) -> None:
        self.agents.append(item)

    def publish(self) -> None:
        metrics.LIVE_CALLS.set(len(self.state.active_calls()))
        self.changes.publish(self.state.version)


class LiveFeed:
    def __init__(
        self,
        hub: Hub,
        *,
        bootstrap: str,
        transcripts_topic: str,
        assist_topic: str,
        readback_s: float,
        client_id: str = "callscope-console",
        poll_timeout_ms: int = 200,
        retry: RetryPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hub = hub
        self._bootstrap = bootstrap
        self._kinds = {transcripts_topic: "transcripts", assist_topic: "assist"}
        self._readback_s = readback_s
        self._client_id = client_id
        self._poll_timeout_ms = poll_timeout_ms
        self._retry = retry or RetryPolicy(base_delay_s=0.5, max_delay_s=5.0)
        self._monotonic = monotonic
        self._lost_at_ms: int | None = None  # when the broker stopped answering

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop`; a lost broker is retried for as long as the console runs."""
        failures = 0
        while not stop.is_set():
            try:
                await self._session(stop)
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                failures = 1 if self._hub.status.state == "live" else failures + 1
                self._hub.set_status("broker_unavailable")
                log.warning(
                    "live feed lost the broker", extra={"error": type(exc).__name__, "retry": failures}
                )
            delay = self._retry.delay_s(failures)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass

    async def _session(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=5000,
            retry_backoff_ms=200,
            # A fetch waits this long for new records when there are none: it bounds how late a
            # record reaches the page (the default 500 ms is half the wall's one-second budget).
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        try:
            partitions = await self._wait_for_partitions(consumer, stop)
            if partitions is None:
                return
            consumer.assign(partitions)
            cutoff_ms = await self._read_back_from(consumer, partitions)
            self._hub.set_status("live")
            await self._poll(consumer, partitions, cutoff_ms, stop)
        finally:
            # With the broker gone, aiokafka's stop waits on fetches that retry: bound it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(consumer.stop(), STOP_TIMEOUT_S)

    async def _wait_for_partitions(
        self, consumer: AIOKafkaConsumer, stop: asyncio.Event
    ) -> list[TopicPartition] | None:
        while not stop.is_set():
            topics = await asyncio.wait_for(consumer.topics(), PROBE_TIMEOUT_S)
            if all(t in topics for t in self._kinds):
                return [
                    TopicPartition(t, p)
                    for t in self._kinds
                    for p in sorted(consumer.partitions_for_topic(t) or ())
                ]
            self._hub.set_status("waiting_for_topics")
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        return None

    async def _read_back_from(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
        """Position every partition at the start of the read-back window; returns its start (ms)."""
        if self._readback_s <= 0:
            await consumer.seek_to_beginning(*partitions)
            return 0
        cutoff_ms = int((time.time() - self._readback_s) * 1000)
        await self._seek_to_time(consumer, partitions, cutoff_ms)
        return cutoff_ms

    async def _seek_to_time(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition], at_ms: int
    ) -> None:
        found = await consumer.offsets_for_times({tp: at_ms for tp in partitions})
        empty = []
        for tp, hit in found.items():
            if hit is None:
                empty.append(tp)
            else:
                consumer.seek(tp, hit.offset)
        if empty:
            # Nothing newer than the cutoff there: seek to the end. Tansu's end can be short by a
            # batch; the records that re-reads are older than the cutoff and skipped in _poll.
            await consumer.seek_to_end(*empty)

    async def _poll(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        cutoff_ms: int,
        stop: asyncio.Event,
    ) -> None:
        last_probe = self._monotonic()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms, max_records=2000)
            now = self._monotonic()
            for tp, records in batches.items():
                kind = self._kinds[tp.topic]
                for record in records:
                    if record.timestamp >= cutoff_ms:
                        self._fold(kind, record, now)
            if batches:
                self._hub.publish()
            if now - last_probe >= PROBE_INTERVAL_S:
                last_probe = now
                expired = self._hub.state.expire(now)
                if expired:
                    self._hub.publish()
                await self._probe(consumer, partitions)

    def _fold(self, kind: str, record: ConsumerRecord[bytes, bytes], now: float) -> None:
        self._hub.fold(kind, record.value, now)

    async def _probe(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Say on the page whether the broker answers. The consumer itself is kept: it reconnects on
        its own, and after a restart that lost the topics (Tansu keeps nothing) its positions are
        out of range, so it starts the new partitions from their beginning (auto_offset_reset)."""
        try:
            # aiokafka has no public "is the cluster reachable" call; a metadata refresh is one.
            cluster = await asyncio.wait_for(consumer._client.fetch_all_metadata(), PROBE_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError):
            if self._lost_at_ms is None:
                self._lost_at_ms = int(time.time() * 1000)
            self._hub.set_status("broker_unavailable")
            return
        for tp in partitions:
            known = cluster.partitions_for_topic(tp.topic)
            if not known or tp.partition not in known:
                self._hub.set_status("waiting_for_topics")
                return
        if self._lost_at_ms is not None:
            # A broker that restarted may hold fewer records than our positions (Tansu restarts
            # empty): read again from just before the outage. Refolding is idempotent.
            await self._seek_to_time(consumer, partitions, self._lost_at_ms - REWIND_MARGIN_MS)
            self._lost_at_ms = None
        self._hub.set_status("live")
