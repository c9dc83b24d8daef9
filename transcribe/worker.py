"""The transcription worker: audio topic -> one speech session per call leg -> transcript topic.

Wiring only; the decisions live in intake.py (partition backlogs, backpressure, commits),
calls.py (what is accepted), registry.py (the legs of each call), leg.py (positions and times of
each event) and engines.py (which engine the sessions run on).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import KafkaError

from ingest.events import AudioFrame, CallEnded, CallStarted, Leg, parse_audio_record
from pipeline.contract import InvalidEvent
from pipeline.deadletter import DeadLetterSink
from pipeline.kafka import make_producer, start_client, watch_broker
from pipeline.logs import log_context
from pipeline.metrics import report_consumer_lag
from pipeline.stage import metrics_server
from transcribe import metrics
from transcribe.calls import CallState, CallTable, Rejected
from transcribe.config import TranscribeConfig
from transcribe.engines import session_factory_for
from transcribe.events import (
    FinalSegment,
    LegError,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
)
from transcribe.intake import Consumer, PartitionIntake, RebalanceListener
from transcribe.language import call_language
from transcribe.leg import LegStream
from transcribe.registry import CallLegs
from transcribe.resume import ReadBack, ResumePoints, read_covered
from transcribe.session import SessionFactory, SpeechError

log = logging.getLogger(__name__)
STAGE = "transcribe"
# Of the drain deadline, the share calls being closed get to emit their finals; the rest is for
# the final flush and commit, before run_until_signalled cancels the stage.
CLOSING_SHARE_OF_DRAIN = 0.8


class TranscribeWorker:
    """Audio records in, transcript events out: the intake feeds `_handle`, the registry holds the legs."""

    def __init__(
        self,
        config: TranscribeConfig,
        consumer: Consumer,
        producer: Any,
        session_factory: SessionFactory,
        *,
        broker_probe: Callable[[], Awaitable[object]] | None = None,
        read_covered: Callable[[set[int]], Awaitable[ReadBack]] | None = None,
    ) -> None:
        self._config = config
        self._producer = producer
        self._deadletters = DeadLetterSink.to_topic(producer, config.deadletter_topic, stage=STAGE)
        self._open_session = session_factory
        self._calls = CallTable()
        self._legs = CallLegs(self._spawn, on_done=self._stream_done)
        self._intake = PartitionIntake(
            consumer,
            topic=config.audio_topic,
            handle=self._handle,
            producer=producer,
            high_records=config.partition_high_records,
            low_records=config.partition_low_records,
            fetch_max_records=config.fetch_max_records,
        )
        # Without the transcript topic read back on a takeover (or with no lookback), a new owner
        # would not know the calls whose call.started lies before the committed offset: the
        # commit then stays at the oldest open call's start.
        can_resume = read_covered is not None and config.resume_lookback_s > 0
        self._intake.watermark.pin_call_starts = not can_resume
        # call id -> its call.started as emitted on the transcript topic, and when (epoch s)
        self._starts: dict[str, tuple[TranscriptCallStarted, float]] = {}
        # partition -> calls that had ended there when it was taken over (their records read again
        # from the committed offset are done with: finals and call.ended are out)
        self._ended_before: dict[int, set[str]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._broker_probe = broker_probe
        self._capacity = asyncio.Event()  # set when a call leaves this worker
        self._read_covered = read_covered
        self._consumer = consumer
        self._resume = ResumePoints()
        self._owned: set[TopicPartition] = set()  # before the rebalance under way
        metrics.MAX_LIVE_CALLS.set(config.max_live_calls)

    async def serve(self, stop: asyncio.Event) -> None:
        """Fetch, commit and finalise idle legs until `stop` is set; then drain as run() says."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            cfg = self._config
            idle_tick_s = min(cfg.commit_interval_s, cfg.idle_leg_timeout_s / 2)
            loops = [
                tg.create_task(self._intake.run(self._spawn), name="transcribe-fetch"),
                tg.create_task(self._intake.commit_every(cfg.commit_interval_s), name="transcribe-commit"),
                tg.create_task(
                    self._legs.retire_idle_every(cfg.idle_leg_timeout_s, idle_tick_s), name="transcribe-idle"
                ),
            ]
            loops.append(tg.create_task(self._end_stale_calls_every(idle_tick_s), name="transcribe-stale"))
            if self._broker_probe is not None:  # says when the broker stops and starts answering
                loops.append(
                    tg.create_task(watch_broker(self._broker_probe, stage=STAGE), name="transcribe-broker")
                )
            await stop.wait()
            for loop in loops:
                loop.cancel()
            self._intake.stop()  # no record is handled from here on: no new call, no new audio
            # The turns in flight end here and their finals go out; the next owner of each
            # partition reads them and resumes after them instead of decoding the calls again.
            finished = await self._legs.finish_all(cfg.drain_deadline_s * CLOSING_SHARE_OF_DRAIN)
            self._legs.cancel_all()
        await self._producer.flush()
        await self._intake.commit()
        log.info("transcription worker stopped", extra={"legs_finished": finished})

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._tg is not None
        return self._tg.create_task(coro, name=name)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        received_at = time.time()
        metrics.RECORDS_IN.inc()
        try:
            event = parse_audio_record(record.value)
        except InvalidEvent as exc:
            await self._deadletters.reject(record, exc.reason, exc.detail)
            return
        if event.call_id in self._ended_before.get(record.partition, ()) and not self._calls.get(
            event.call_id
        ):
            if isinstance(event, AudioFrame):
                metrics.FRAMES_DROPPED.labels("already_final").inc()
            return
        match event:
            case AudioFrame():
                rejected = self._calls.check_frame(event)
                if rejected:
                    if rejected.reason == "call_already_ended":
                        metrics.RECORDS_AFTER_CALL_END.inc()
                    with log_context(leg=event.leg):
                        await self._deadletters.reject(record, rejected.reason, rejected.detail)
                    if rejected.reason == "leg_format_changed":
                        await self._report_leg_once(event.call_id, event.leg, rejected.reason)
                    return
                metrics.FRAMES_IN.inc()
                state = self._calls.get(event.call_id)
                if state is not None:
                    state.last_audio_at = time.monotonic()
                if self._resume and self._resume.skip(event):
                    metrics.FRAMES_DROPPED.labels("already_final").inc()  # its finals are out
                    return
                with log_context(leg=event.leg):  # the leg's tasks, started in there, keep it
                    await self._feed(event, record, received_at)
            case CallStarted():
                if self._calls.get(event.call_id) is None:
                    await self._room_for_a_call(record.partition)
                state = self._calls.start(event.call_id, record.partition, record.offset)
                if state is None:
                    log.info("duplicate call.started ignored", extra={"call_id": event.call_id})
                    return
                state.opened_at = state.last_audio_at = time.monotonic()
                state.language = call_language(event.metadata, self._config.language)
                self._intake.watermark.call_started(record.partition, event.call_id, record.offset)
                await self._emit_call_started(
                    TranscriptCallStarted(**event.model_dump(exclude={"type", "v"}))
                )
            case CallEnded():
                ended = self._calls.end(event.call_id)
                if isinstance(ended, Rejected):
                    if ended.reason == "call_already_ended":
                        metrics.RECORDS_AFTER_CALL_END.inc()
                    await self._deadletters.reject(record, ended.reason, ended.detail)
                    return
                self._intake.watermark.call_ending(record.partition, event.call_id, record.offset)
                self._legs.close(event.call_id, functools.partial(self._call_closed, ended, event))
                self._capacity.set()

    async def _room_for_a_call(self, partition: int) -> None:
        """Hold this partition at its new call while max_live_calls calls are open here."""
        limit = self._config.max_live_calls
        if len(self._calls) < limit:
            return
        log.warning(
            "at max_live_calls: partition held at a new call", extra={"partition": partition, "limit": limit}
        )
        metrics.PARTITIONS_HELD.inc()
        held_since = time.monotonic()
        try:
            while len(self._calls) >= limit:
                self._capacity.clear()
                await self._capacity.wait()
        finally:
            metrics.PARTITIONS_HELD.dec()
        held_s = round(time.monotonic() - held_since, 1)
        log.info("partition takes new calls again", extra={"partition": partition, "held_s": held_s})

    async def _end_stale_calls_every(self, tick_s: float) -> None:
        """Every `tick_s`, end the calls that went silent or ran too long without a call.ended, and
        emit again the call.started of calls open for half the resume lookback."""
        while True:
            await asyncio.sleep(tick_s)
            self.end_stale_calls(time.monotonic())
            await self.refresh_call_starts(time.time())

    async def refresh_call_starts(self, now: float) -> list[str]:
        """Emit again the call.started of the open calls whose last one went out half the resume
        lookback ago (by epoch time `now`), so a worker taking the call over still finds it on the
        transcript topic however long the call; returns their ids."""
        if self._intake.watermark.pin_call_starts:
            return []
        refreshed = []
        for call_id, (started, emitted_at) in list(self._starts.items()):
            if now - emitted_at >= self._config.resume_lookback_s / 2 and self._calls.get(call_id):
                await self._emit_call_started(started)
                refreshed.append(call_id)
        return refreshed

    async def _emit_call_started(self, started: TranscriptCallStarted) -> None:
        self._starts[started.call_id] = (started, time.time())
        await self._emit(started)

    def end_stale_calls(self, now: float) -> list[str]:
        """End here, as if their call.ended had come, the calls with no audio for idle_call_timeout_s
        or open longer than max_call_duration_s (by monotonic time `now`); returns their ids."""
        cfg = self._config
        stale = []
        for state in self._calls.open_calls():
            if now - state.opened_at >= cfg.max_call_duration_s:
                reason = "max_duration"
            elif now - state.last_audio_at >= cfg.idle_call_timeout_s:
                reason = "idle"
            else:
                continue
            ended = self._calls.end(state.call_id)
            assert isinstance(ended, CallState)
            log.info("call ended by the worker", extra={"call_id": state.call_id, "reason": reason})
            metrics.CALLS_ENDED_HERE.labels(reason).inc()
            event = CallEnded(call_id=state.call_id, ended_at=time.time(), reason=reason)
            self._legs.close(state.call_id, functools.partial(self._call_closed, ended, event))
            self._capacity.set()
            stale.append(state.call_id)
        return stale

    async def _feed(
        self, frame: AudioFrame, record: ConsumerRecord[bytes, bytes], received_at: float
    ) -> None:
        call_id, leg = frame.call_id, frame.leg
        stream = await self._legs.stream_for(frame, self._new_leg)
        if stream is None:
            metrics.FRAMES_DROPPED.labels("leg_failed").inc()
            return
        # Needed again after a crash until a final of the stream covers it (watermark.py).
        self._intake.watermark.frame_fed(
            stream, record.partition, record.offset, frame.offset_samples, frame.sample_rate_hz
        )
        try:
            # A session that takes no audio for this long is stalled: fail the leg, not the partition.
            async with asyncio.timeout(self._config.leg_stall_timeout_s):
                await stream.feed(frame, received_at)
            metrics.LEG_FEED.fed(call_id, leg, frame.captured_at, stream)
        except TimeoutError:
            log.warning("leg stalled", extra={"call_id": call_id, "leg": leg})
            self._legs.detach(call_id, leg)
            await stream.fail("engine_stalled", retryable=True)
        except SpeechError as exc:
            # The session already reported (or will report) a LegError; this frame is lost with it.
            log.warning("frame not transcribed", extra={"call_id": call_id, "code": exc.code})

    def _new_leg(self, frame: AudioFrame) -> LegStream:
        state = self._calls.get(frame.call_id)
        language = state.language if state is not None else None
        session = self._open_session(call_id=frame.call_id, leg=frame.leg, language=language)
        gap = self._config.max_gap_fill_ms * 16
        streams: list[LegStream] = []

        async def emit(event: TranscriptEvent) -> None:
            await self._emit(event)
            if isinstance(event, FinalSegment):  # enqueued: the next commit flushes it first
                self._intake.watermark.final_out(streams[0], event.end_ms)

        streams.append(LegStream.from_frame(frame, session=session, emit=emit, max_gap_samples=gap))
        return streams[0]

    def _stream_done(self, stream: LegStream) -> None:
        self._intake.watermark.stream_done(stream)

    async def _report_leg_once(self, call_id: str, leg: Leg, code: str) -> None:
        """A LegError for input the leg cannot take (e.g. its codec changed), once per call and leg."""
        if self._legs.fail(call_id, leg):
            metrics.LEG_ERRORS.labels(code).inc()
            await self._emit(LegError(call_id=call_id, leg=leg, code=code, retryable=False, at=time.time()))

    async def _call_closed(self, state: CallState, event: CallEnded) -> None:
        """Both legs' finals are out: emit call.ended after them, and let the watermark pass the call."""
        await self._emit(TranscriptCallEnded(**event.model_dump(exclude={"type", "v"})))
        self._intake.watermark.call_closed(state.partition, state.call_id)
        self._starts.pop(state.call_id, None)
        self._resume.forget(state.call_id)
        metrics.LEG_FEED.forget(state.call_id)

    async def _emit(self, event: TranscriptEvent) -> None:
        # send() only enqueues; ordering per partition holds, durability comes from flush-before-commit.
        topic = self._config.transcripts_topic
        await self._producer.send(topic, event.to_bytes(), key=event.call_id.encode())

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is safe; the calls stay live until the assignment says which partitions went."""
        self._owned = set(revoked)
        await self._intake.revoke(revoked)

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Drop, without finishing them, the calls of the partitions this rebalance took away; the
        calls of partitions assigned back go on as if nothing happened (no re-read, no gap)."""
        for tp in self._intake.assigned(assigned):
            self._ended_before.pop(tp.partition, None)
            for state in self._calls.drop_partition(tp.partition):
                self._legs.drop(state.call_id)
                self._starts.pop(state.call_id, None)
                self._resume.forget(state.call_id)
                metrics.LEG_FEED.forget(state.call_id)
                self._capacity.set()
        new = assigned - self._owned
        self._owned = set(assigned)
        if new and self._read_covered is not None:
            # Taken over: what the last owner already made final is not decoded again. The fetcher
            # runs on during this callback: hold the new partitions until the finals are read.
            self._consumer.pause(*new)
            try:
                read = await self._read_covered({tp.partition for tp in new})
                self._resume.add(read.covered)
                self._open_calls_read_back(read)
            finally:
                self._consumer.resume(*(new & self._consumer.assignment()))

    def _open_calls_read_back(self, read: ReadBack) -> None:
        """Open the calls still open on the partitions taken over, from their call.started on the
        transcript topic: the committed offset may lie past their audio call.started (which, if
        read again, is then a duplicate). Not emitted again; they were open already, so they are
        not held for max_live_calls either. The records of calls that ended there already, if read
        again, are dropped: their finals and call.ended are out."""
        for call_id, partition in read.ended.items():
            self._ended_before.setdefault(partition, set()).add(call_id)
        opened = 0
        for call_id, call in read.open_calls.items():
            state = self._calls.start(call_id, call.partition, -1)  # its audio offset is not known
            if state is None:
                continue
            opened += 1
            state.opened_at = state.last_audio_at = time.monotonic()
            state.language = call_language(call.started.metadata, self._config.language)
            self._starts[call_id] = (call.started, call.emitted_at)
        if opened:
            log.info("calls opened from the transcript topic", extra={"calls": opened})


async def run(
    config: TranscribeConfig, *, stop: asyncio.Event, session_factory: SessionFactory | None = None
) -> None:
    """Serve /metrics and transcribe until `stop` is set; `callscope transcribe` runs this.

    On stop (SIGTERM: a planned restart): no record is handled any more; the input of every open
    leg is ended, and within CLOSING_SHARE_OF_DRAIN (80%) of drain_deadline_s the turns in flight
    emit their finals (and calls whose call.ended was read their call.ended). The calls stay open:
    the partition's next owner reads them from the committed offset and resumes after those
    finals. Then the producer is flushed, what is safe is committed, and the consumer leaves the
    group (the next owner gets the partitions at the next rebalance, not after a session timeout).
    """
    with metrics_server(config.metrics_host_port(), stage=STAGE):
        factory = session_factory or await asyncio.to_thread(session_factory_for, config)
        listener = RebalanceListener()

        def new_consumer() -> AIOKafkaConsumer:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=config.kafka_bootstrap,
                group_id=config.group_id,
                client_id=config.client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=config.session_timeout_ms,
                heartbeat_interval_ms=config.heartbeat_interval_ms,
                fetch_max_wait_ms=config.fetch_max_wait_ms,
                # Sticky: a rebalance moves as few partitions as it can, so adding or removing a
                # worker leaves most calls where they are (aiokafka's rebalance is still eager: see
                # TranscribeWorker.partitions_assigned for why that costs the kept calls nothing).
                partition_assignment_strategy=(StickyPartitionAssignor,),
            )
            consumer.subscribe([config.audio_topic], listener=listener)
            return consumer

        bootstrap, wait_s = config.kafka_bootstrap, config.broker_wait_s
        producer = await start_client(
            lambda: make_producer(bootstrap, client_id=config.client_id),
            bootstrap=bootstrap,
            what="producer",
            wait_s=wait_s,
        )
        try:
            consumer = await start_client(new_consumer, bootstrap=bootstrap, what="consumer", wait_s=wait_s)
            # A consumer of no group, for the finals already out on partitions taken over.
            reader = await start_client(
                lambda: AIOKafkaConsumer(
                    bootstrap_servers=bootstrap,
                    client_id=f"{config.client_id}-resume",
                    enable_auto_commit=False,
                ),
                bootstrap=bootstrap,
                what="resume reader",
                wait_s=wait_s,
            )
            covered = functools.partial(
                read_covered,
                reader,
                config.transcripts_topic,
                lookback_s=config.resume_lookback_s,
                deadline_s=config.resume_read_deadline_s,
            )
            try:
                worker = TranscribeWorker(
                    config, consumer, producer, factory, broker_probe=consumer.topics, read_covered=covered
                )
                listener.on_revoked = worker.partitions_revoked
                listener.on_assigned = worker.partitions_assigned
                if (unseen := listener.take_unseen()) is not None:
                    await worker.partitions_assigned(unseen)
                log.info("transcription worker started", extra={"topic": config.audio_topic})
                lag = asyncio.create_task(
                    report_consumer_lag(consumer, metrics.CONSUMER_LAG), name="transcribe-lag"
                )
                try:
                    await worker.serve(stop)
                finally:
                    lag.cancel()
            finally:
                listener.on_revoked = listener.on_assigned = None
                with contextlib.suppress(KafkaError):
                    await consumer.stop()
                with contextlib.suppress(KafkaError):
                    await reader.stop()
        finally:
            await producer.stop()
