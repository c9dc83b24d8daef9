"""The transcription worker: audio topic -> one speech session per call leg -> transcript topic.

Wiring only; the decisions live in calls.py (what is accepted), watermark.py (what may be
committed), segmenter.py (turns) and leg.py (positions and times of each event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from ingest.events import AudioFrame, CallEnded, CallStarted, Leg, parse_audio_record
from pipeline.contract import InvalidEvent
from pipeline.deadletter import DeadLetterSink
from pipeline.kafka import make_producer
from pipeline.stage import metrics_server
from transcribe import metrics
from transcribe.calls import CallState, CallTable, Rejected
from transcribe.codec import LegDecoder, samples_at_16k
from transcribe.config import TranscribeConfig
from transcribe.events import LegError, TranscriptCallEnded, TranscriptCallStarted, TranscriptEvent
from transcribe.leg import LegStream
from transcribe.session import SessionFactory, SpeechError
from transcribe.watermark import CommitWatermark

if TYPE_CHECKING:
    from transcribe.connector import Connect
    from transcribe.sagemaker_stream import StreamOpener

log = logging.getLogger(__name__)
STAGE = "transcribe"


def local_session_factory(config: TranscribeConfig) -> SessionFactory:
    """Sessions on the embedded CPU engine; the model is loaded once per process."""
    from transcribe.local_session import LocalSession
    from transcribe.whisper_engine import shared_engine

    engine = shared_engine(config.whisper())
    session_config = config.local_session()

    def open_session(*, call_id: str, leg: Leg) -> LocalSession:
        return LocalSession(engine, session_config)

    return open_session


def vllm_session_factory(config: TranscribeConfig, connect: Connect | None = None) -> SessionFactory:
    """Sessions on a /v1/realtime server (vLLM, or `callscope transcribe serve`), or through `connect`."""
    from transcribe.vllm_session import VllmSession

    session_config = config.vllm_session(connect)

    def open_session(*, call_id: str, leg: Leg) -> VllmSession:
        return VllmSession(session_config)

    return open_session


def sagemaker_session_factory(config: TranscribeConfig, opener: StreamOpener | None = None) -> SessionFactory:
    """Sessions on vLLM behind a SageMaker endpoint. The HTTP/2 client is resolved here, so a
    worker without it fails at start (SageMakerClientMissing names the extra), not on every leg."""
    from transcribe.sagemaker_transport import sdk_stream_opener

    return vllm_session_factory(config, config.realtime_connect(opener=opener or sdk_stream_opener()))


def session_factory_for(config: TranscribeConfig) -> SessionFactory:
    """The engine the config selects (`engine`: local, vllm or sagemaker)."""
    match config.engine:
        case "vllm":
            return vllm_session_factory(config)
        case "sagemaker":
            return sagemaker_session_factory(config)
        case "local":
            return local_session_factory(config)


class _PartitionBacklog:
    """Records fetched for one partition and not yet handled; the fetch loop pauses it when long."""

    def __init__(self) -> None:
        self.records: deque[ConsumerRecord[bytes, bytes]] = deque()
        self.ready = asyncio.Event()
        self.paused = False
        self.task: asyncio.Task[None] | None = None


class TranscribeWorker:
    def __init__(
        self,
        config: TranscribeConfig,
        consumer: AIOKafkaConsumer,
        producer: Any,
        session_factory: SessionFactory,
    ) -> None:
        self._config = config
        self._consumer = consumer
        self._producer = producer
        self._deadletters = DeadLetterSink.to_topic(producer, config.deadletter_topic, stage=STAGE)
        self._open_session = session_factory
        self._calls = CallTable()
        self._watermark = CommitWatermark()
        self._backlogs: dict[TopicPartition, _PartitionBacklog] = {}
        self._active: dict[tuple[str, Leg], LegStream] = {}
        self._streams: dict[str, list[tuple[LegStream, asyncio.Task[None]]]] = {}
        self._closers: dict[str, asyncio.Task[None]] = {}
        self._failed_legs: set[tuple[str, Leg]] = set()  # legs given up on until their call ends
        self._tg: asyncio.TaskGroup | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            fetch = tg.create_task(self._fetch_loop(), name="transcribe-fetch")
            housekeeping = tg.create_task(self._housekeeping_loop(), name="transcribe-housekeeping")
            await stop.wait()
            fetch.cancel()
            housekeeping.cancel()
            for backlog in self._backlogs.values():
                if backlog.task:
                    backlog.task.cancel()
            # Calls being closed get a moment to emit their finals; open calls are re-read on restart.
            if self._closers:
                await asyncio.wait(list(self._closers.values()), timeout=self._config.drain_deadline_s)
            for task in [*self._closers.values(), *(t for s in self._streams.values() for _, t in s)]:
                task.cancel()
        await self._commit()
        log.info("transcription worker stopped")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._tg is not None
        return self._tg.create_task(coro, name=name)

    # -- fetching and backpressure ----------------------------------------------------------

    async def _fetch_loop(self) -> None:
        cfg = self._config
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=cfg.fetch_max_records)
            for tp, records in batches.items():
                backlog = self._backlog(tp)
                backlog.records.extend(records)
                backlog.ready.set()
                if len(backlog.records) >= cfg.partition_high_records and not backlog.paused:
                    self._consumer.pause(tp)
                    backlog.paused = True
                    metrics.PARTITIONS_PAUSED.inc()
                    log.info("partition paused", extra={"partition": tp.partition})

    def _backlog(self, tp: TopicPartition) -> _PartitionBacklog:
        backlog = self._backlogs.get(tp)
        if backlog is None:
            backlog = self._backlogs[tp] = _PartitionBacklog()
            backlog.task = self._spawn(
                self._partition_loop(tp, backlog), f"transcribe-partition-{tp.partition}"
            )
        return backlog

    async def _partition_loop(self, tp: TopicPartition, backlog: _PartitionBacklog) -> None:
        while True:
            if not backlog.records:
                backlog.ready.clear()
                await backlog.ready.wait()
                continue
            record = backlog.records.popleft()
            await self._handle(record)
            self._watermark.consumed(tp.partition, record.offset)
            if backlog.paused and len(backlog.records) <= self._config.partition_low_records:
                if tp in self._consumer.assignment():
                    self._consumer.resume(tp)
                backlog.paused = False
                metrics.PARTITIONS_PAUSED.dec()
                log.info("partition resumed", extra={"partition": tp.partition})

    # -- records ----------------------------------------------------------------------------

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        received_at = time.time()
        metrics.RECORDS_IN.inc()
        try:
            event = parse_audio_record(record.value)
        except InvalidEvent as exc:
            await self._dead_letter(record, exc.reason, exc.detail)
            return
        match event:
            case AudioFrame():
                rejected = self._calls.check_frame(event)
                if rejected:
                    await self._dead_letter(record, rejected.reason, rejected.detail)
                    if rejected.reason == "leg_format_changed":
                        await self._report_leg_once(event.call_id, event.leg, rejected.reason)
                    return
                metrics.FRAMES_IN.inc()
                await self._feed(event, received_at)
            case CallStarted():
                state = self._calls.start(event.call_id, record.partition, record.offset)
                if state is None:
                    log.info("duplicate call.started ignored", extra={"call_id": event.call_id})
                    return
                self._watermark.call_started(record.partition, event.call_id, record.offset)
                await self._emit(TranscriptCallStarted(**event.model_dump(exclude={"type", "v"})))
            case CallEnded():
                ended = self._calls.end(event.call_id)
                if isinstance(ended, Rejected):
                    await self._dead_letter(record, ended.reason, ended.detail)
                    return
                self._closers[event.call_id] = self._spawn(
                    self._close_call(ended, event), f"transcribe-close-{event.call_id}"
                )

    async def _feed(self, frame: AudioFrame, received_at: float) -> None:
        key = (frame.call_id, frame.leg)
        stream = self._active.get(key)
        if stream is not None and (stream.ended or not stream.accepts(frame)):
            if stream.error is not None and not stream.error.retryable:
                self._failed_legs.add(key)  # a new session would fail the same way
            await self._retire(key)
            stream = None
        if key in self._failed_legs:
            metrics.FRAMES_DROPPED.labels("leg_failed").inc()
            return
        if stream is None:
            stream = self._open_leg(frame)
        try:
            # A session that takes no audio for this long is stalled: fail the leg, not the partition.
            async with asyncio.timeout(self._config.leg_stall_timeout_s):
                await stream.feed(frame, received_at)
        except TimeoutError:
            log.warning("leg stalled", extra={"call_id": frame.call_id, "leg": frame.leg})
            self._active.pop(key, None)
            await stream.fail("engine_stalled", retryable=True)
        except SpeechError as exc:
            # The session already reported (or will report) a LegError; this frame is lost with it.
            log.warning("frame not transcribed", extra={"call_id": frame.call_id, "code": exc.code})

    def _open_leg(self, frame: AudioFrame) -> LegStream:
        cfg = self._config
        stream = LegStream(
            call_id=frame.call_id,
            leg=frame.leg,
            session=self._open_session(call_id=frame.call_id, leg=frame.leg),
            decoder=LegDecoder(frame.codec, frame.sample_rate_hz),
            base_position=samples_at_16k(frame.offset_samples, frame.sample_rate_hz),
            emit=self._emit,
            max_gap_samples=cfg.max_gap_fill_ms * 16,
        )
        task = self._spawn(stream.run(), f"transcribe-leg-{frame.call_id}-{frame.leg}")
        self._active[(frame.call_id, frame.leg)] = stream
        self._streams.setdefault(frame.call_id, []).append((stream, task))
        return stream

    async def _report_leg_once(self, call_id: str, leg: Leg, code: str) -> None:
        """A LegError for input the leg cannot take (e.g. its codec changed), once per call and leg."""
        if (call_id, leg) in self._failed_legs:
            return
        self._failed_legs.add((call_id, leg))
        metrics.LEG_ERRORS.labels(code).inc()
        await self._emit(LegError(call_id=call_id, leg=leg, code=code, retryable=False, at=time.time()))

    async def _retire(self, key: tuple[str, Leg]) -> None:
        stream = self._active.pop(key, None)
        if stream is not None:
            await stream.end_input()

    async def _close_call(self, state: CallState, event: CallEnded) -> None:
        """End both legs, wait for their finals, then emit call.ended after them."""
        for leg in ("agent", "customer"):
            self._active.pop((state.call_id, leg), None)
            self._failed_legs.discard((state.call_id, leg))
        streams = self._streams.pop(state.call_id, [])
        for stream, _ in streams:
            await stream.end_input()
        for _, task in streams:
            await task
        await self._emit(TranscriptCallEnded(**event.model_dump(exclude={"type", "v"})))
        self._watermark.call_closed(state.partition, state.call_id)
        self._closers.pop(state.call_id, None)

    async def _emit(self, event: TranscriptEvent) -> None:
        # send() only enqueues; ordering per partition holds, durability comes from flush-before-commit.
        await self._producer.send(
            self._config.transcripts_topic, event.to_bytes(), key=event.call_id.encode()
        )

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str = "") -> None:
        await self._deadletters.reject(record, reason, detail)

    # -- housekeeping: idle legs and commits ------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        cfg = self._config
        tick = min(cfg.commit_interval_s, cfg.idle_leg_timeout_s / 2)
        last_commit = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for key, stream in list(self._active.items()):
                if now - stream.last_audio_at >= cfg.idle_leg_timeout_s:
                    log.info("idle leg finalised", extra={"call_id": key[0], "leg": key[1]})
                    self._active.pop(key, None)
                    self._spawn(stream.end_input(), f"transcribe-idle-{key[0]}-{key[1]}")
            if now - last_commit >= cfg.commit_interval_s:
                await self._commit()
                last_commit = now

    async def _commit(self) -> None:
        offsets = self._watermark.to_commit()
        assigned = {tp.partition for tp in self._consumer.assignment()}
        offsets = {p: o for p, o in offsets.items() if p in assigned}
        if not offsets:
            return
        await self._producer.flush()
        topic = self._config.audio_topic
        try:
            await self._consumer.commit(
                {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
            )
        except (CommitFailedError, KafkaError) as exc:
            log.warning("offset commit failed", extra={"error": type(exc).__name__})
            return
        self._watermark.committed(offsets)

    # -- rebalancing ------------------------------------------------------------------------

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is safe, then drop the revoked partitions' calls without finishing them."""
        await self._commit()
        for tp in revoked:
            backlog = self._backlogs.pop(tp, None)
            if backlog and backlog.task:
                backlog.task.cancel()
            if backlog and backlog.paused:
                metrics.PARTITIONS_PAUSED.dec()
            for state in self._calls.drop_partition(tp.partition):
                self._drop_call(state.call_id)
            self._watermark.forget(tp.partition)

    def _drop_call(self, call_id: str) -> None:
        for leg in ("agent", "customer"):
            self._active.pop((call_id, leg), None)
            self._failed_legs.discard((call_id, leg))
        for _, task in self._streams.pop(call_id, []):
            task.cancel()
        closer = self._closers.pop(call_id, None)
        if closer:
            closer.cancel()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.worker: TranscribeWorker | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.worker is not None:
            await self.worker.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})


async def run(
    config: TranscribeConfig,
    *,
    stop: asyncio.Event | None = None,
    session_factory: SessionFactory | None = None,
) -> None:
    """Serve until `stop` is set (or the task is cancelled); `callscope transcribe` calls this."""
    stop = stop or asyncio.Event()
    with metrics_server(config.metrics_host_port(), stage=STAGE):
        await _serve(config, stop, session_factory)


async def _serve(
    config: TranscribeConfig, stop: asyncio.Event, session_factory: SessionFactory | None
) -> None:
    factory = session_factory or await asyncio.to_thread(session_factory_for, config)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka_bootstrap,
        group_id=config.group_id,
        client_id=config.client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    listener = _Rebalance()
    consumer.subscribe([config.audio_topic], listener=listener)
    producer = make_producer(config.kafka_bootstrap, client_id=config.client_id)
    await producer.start()
    try:
        await consumer.start()
        try:
            worker = TranscribeWorker(config, consumer, producer, factory)
            listener.worker = worker
            log.info("transcription worker started", extra={"topic": config.audio_topic})
            await worker.serve(stop)
        finally:
            listener.worker = None
            with contextlib.suppress(KafkaError):
                await consumer.stop()
    finally:
        await producer.stop()
