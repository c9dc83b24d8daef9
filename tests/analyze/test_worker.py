"""The analysis worker against the real embedded Tansu broker, driven through Kafka only."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from analyze.config import AnalyzeConfig
from analyze.events import (
    AgentHint,
    AssistEvent,
    ComplianceState,
    Sentiment,
    SupervisorAlert,
    parse_assist_event,
)
from analyze.worker import SourceTopicError, run
from deploy.runtime import free_port
from ingest.events import Leg
from pipeline.deadletter import DeadLetter
from pipeline.kafka import create_topics, make_producer
from pipeline.topics import TOPICS
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
    segment_id,
)

PARTITIONS = 2
BAD_RECORD = b'{"type": "segment.final", "call_id": 7'
# faust's first consumer-group assignment on Tansu takes several seconds; allow for a slow box.
DEADLINE_S = 90.0


def _times() -> StageTimes:
    now = time.time()
    return StageTimes(audio_captured_at=now - 0.3, audio_received_at=now - 0.2, emitted_at=now)


def _turn(call_id: str, leg: Leg, start_ms: int, words: list[str]) -> list[PartialSegment | FinalSegment]:
    """Partials that grow word by word, then the final of the same turn."""
    seg = segment_id(call_id, leg, start_ms)
    end_ms = start_ms + 400 * len(words)
    partials: list[PartialSegment | FinalSegment] = [
        PartialSegment(
            call_id=call_id,
            leg=leg,
            segment_id=seg,
            start_ms=start_ms,
            end_ms=start_ms + 400 * (i + 1),
            text=" ".join(words[: i + 1]),
            revision=i,
            times=_times(),
        )
        for i in range(len(words))
    ]
    final = FinalSegment(
        call_id=call_id,
        leg=leg,
        segment_id=seg,
        start_ms=start_ms,
        end_ms=end_ms,
        text=" ".join(words) + ".",
        times=_times(),
    )
    return [*partials, final]


def _call(call_id: str, customer_says: str) -> list[TranscriptEvent]:
    return [
        TranscriptCallStarted(call_id=call_id, started_at=time.time(), agent_id="a-1", queue="billing"),
        *_turn(call_id, "agent", 0, "thank you for calling how can I help".split()),
        *_turn(call_id, "customer", 3000, customer_says.split()),
        *_turn(call_id, "agent", 9000, "I am sorry to hear that".split()),
        TranscriptCallEnded(call_id=call_id, ended_at=time.time()),
    ]


async def _collect_until(
    fresh_bootstrap: str,
    topic: str,
    parse: Callable[[bytes], object],
    done: Callable[[list], bool],
    *,
    to_end: bool = False,
) -> list:
    """Records of `topic` from the start until `done`; with `to_end`, then on to each partition's
    end as it is then: records land on the partitions of their keys, so one call's last event says
    nothing of another's on another partition (Tansu's end offsets are right for the analyze
    worker, which writes one record per batch)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=fresh_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: list = []
    ends: dict[TopicPartition, int] = {}
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not done(seen) or [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {DEADLINE_S} s; got {len(seen)} records")
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                seen.extend(parse(r.value) for r in records)
            if to_end and not ends and done(seen):
                ends = await consumer.end_offsets(list(consumer.assignment()))
    finally:
        await consumer.stop()
    return seen


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


@contextlib.asynccontextmanager
async def _running_worker(config: AnalyzeConfig) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(config, stop=stop), name="analyze-worker-under-test")
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def _produce(fresh_bootstrap: str, records: list[tuple[int, bytes, bytes | None]]) -> dict[int, int]:
    """Send (partition, key, value) records to the transcript topic; return the next offset per partition."""
    producer = make_producer(fresh_bootstrap, client_id="test-transcriber")
    await producer.start()
    try:
        sent = [await producer.send(TOPICS.transcripts, v, key=k, partition=p) for p, k, v in records]
        await producer.flush()
        ends: dict[int, int] = {}
        for future in sent:
            meta = await future
            ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        return ends
    finally:
        await producer.stop()


async def _committed(fresh_bootstrap: str, group_id: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=fresh_bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(TOPICS.transcripts, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


async def test_worker_emits_hint_alert_and_sentiment_and_dead_letters_bad_record(
    fresh_bootstrap: str,
) -> None:
    await create_topics(fresh_bootstrap, PARTITIONS)
    # One call per partition, as the key would place them with more calls.
    records: list[tuple[int, bytes, bytes | None]] = [
        (0, b"call-cancel", e.to_bytes()) for e in _call("call-cancel", "I want to cancel my account")
    ]
    # Bad records ahead of a good call in its partition: the call must still be analysed.
    records.append((1, b"call-manager", BAD_RECORD))
    records.append((1, b"call-manager", None))
    records += [(1, b"call-manager", e.to_bytes()) for e in _call("call-manager", "can I speak to a manager")]
    end_offsets = await _produce(fresh_bootstrap, records)

    metrics_port = free_port()
    config = AnalyzeConfig(
        kafka_bootstrap=fresh_bootstrap,
        partitions=PARTITIONS,
        app_id="callscope-analyze-test",
        session_timeout_s=6,
        commit_interval_s=60,  # so only the commit made when stopping can commit
        metrics_address=f"127.0.0.1:{metrics_port}",
    )
    cancel_seg = segment_id("call-cancel", "customer", 3000)
    manager_seg = segment_id("call-manager", "customer", 3000)

    def complete(events: list[AssistEvent]) -> bool:
        finals = {(e.call_id, e.segment_id) for e in events if isinstance(e, Sentiment) and e.final}
        triggered = {e.rule_id for e in events if isinstance(e, AgentHint | SupervisorAlert)}
        closed = {e.call_id for e in events if isinstance(e, ComplianceState) and e.call_ended}
        # A call's end emits its checklist and its misses as separate records: wait for both.
        missed = {e.call_id for e in events if isinstance(e, SupervisorAlert) and e.category == "compliance"}
        return (
            len(finals) == 6
            and {"retention-cancel", "escalation-request"} <= triggered
            and closed == missed == {"call-cancel", "call-manager"}
        )

    async with _running_worker(config):
        assist: list[AssistEvent] = await _collect_until(
            fresh_bootstrap, TOPICS.assist, parse_assist_event, complete
        )
        letters = await _collect_until(
            fresh_bootstrap, TOPICS.deadletter, DeadLetter.model_validate_json, lambda seen: len(seen) >= 2
        )
        scraped = await asyncio.to_thread(_scrape, metrics_port)

    hints = [e for e in assist if isinstance(e, AgentHint)]
    alerts = [e for e in assist if isinstance(e, SupervisorAlert) and e.category != "compliance"]
    assert [(h.call_id, h.rule_id, h.segment_id, h.leg) for h in hints] == [
        ("call-cancel", "retention-cancel", cancel_seg, "customer")
    ]
    assert [(a.call_id, a.rule_id, a.segment_id, a.leg) for a in alerts] == [
        ("call-manager", "escalation-request", manager_seg, "customer")
    ]
    assert hints[0].matched == "cancel my account" and not hints[0].on_final  # fired on a partial
    assert alerts[0].matched == "speak to a manager"
    # Neither scripted agent gave the recording disclosure: a compliance miss on each call's end.
    misses = [e for e in assist if isinstance(e, SupervisorAlert) and e.category == "compliance"]
    assert sorted((e.call_id, e.rule_id) for e in misses) == [
        ("call-cancel", "recording-disclosure"),
        ("call-manager", "recording-disclosure"),
    ]

    sentiments = [e for e in assist if isinstance(e, Sentiment)]
    final_sentiments = {(e.call_id, e.leg, e.segment_id) for e in sentiments if e.final}
    assert ("call-cancel", "customer", cancel_seg) in final_sentiments
    assert ("call-manager", "agent", segment_id("call-manager", "agent", 9000)) in final_sentiments

    bad, empty = sorted(letters, key=lambda letter: letter.source_offset or 0)
    assert (bad.stage, bad.reason, bad.key) == ("analyze", "invalid_json", "call-manager")
    assert bad.source_topic == TOPICS.transcripts and bad.source_offset is not None
    assert base64.b64decode(bad.value_b64) == BAD_RECORD
    assert (empty.reason, empty.source_offset) == ("empty_value", bad.source_offset + 1)

    assert 'callscope_analyze_final_to_assist_latency_seconds_count{type="sentiment"}' in scraped
    assert 'callscope_analyze_partial_to_assist_latency_seconds_count{type="assist.alert"}' in scraped
    assert 'callscope_dead_letters_total{reason="invalid_json",stage="analyze",where="topic"}' in scraped

    # Stopping commits what was processed, so a restarted worker does not redo the calls.
    assert end_offsets.keys() == {0, 1}
    assert await _committed(fresh_bootstrap, config.app_id) == end_offsets


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_worker_process_stops_cleanly_on_signal(
    fresh_bootstrap: str, tmp_path: Path, sig: signal.Signals
) -> None:
    await create_topics(fresh_bootstrap, PARTITIONS)
    await _produce(
        fresh_bootstrap, [(0, b"call-sig", e.to_bytes()) for e in _call("call-sig", "hello there")]
    )
    env = {
        **os.environ,
        "CALLSCOPE_KAFKA_BOOTSTRAP": fresh_bootstrap,
        "CALLSCOPE_PARTITIONS": str(PARTITIONS),
        "CALLSCOPE_ANALYZE_SESSION_TIMEOUT_S": "6",
        "CALLSCOPE_ANALYZE_APP_ID": f"callscope-analyze-{sig.name.lower()}",
        "CALLSCOPE_ANALYZE_METRICS_ADDRESS": "127.0.0.1:0",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deploy.cli", "analyze", env=env, stdout=log_file, stderr=log_file
        )
        try:
            # Processing has begun once the call's first sentiment is on the assist topic.
            await _collect_until(
                fresh_bootstrap, TOPICS.assist, parse_assist_event, lambda seen: len(seen) >= 1
            )
            proc.send_signal(sig)
            returncode = await asyncio.wait_for(proc.wait(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    log_text = log_path.read_text(errors="replace")
    assert returncode == 0, log_text[-3000:]
    assert "analyze worker stopped" in log_text
    assert "Traceback" not in log_text


async def test_worker_refuses_to_start_without_the_transcript_topic(fresh_bootstrap: str) -> None:
    config = AnalyzeConfig(
        kafka_bootstrap=fresh_bootstrap, partitions=PARTITIONS, metrics_address="127.0.0.1:0"
    )
    with pytest.raises(SourceTopicError, match="does not exist"):
        await run(config, stop=asyncio.Event())


async def test_worker_refuses_a_transcript_topic_with_another_partition_count(fresh_bootstrap: str) -> None:
    await create_topics(fresh_bootstrap, PARTITIONS)
    config = AnalyzeConfig(
        kafka_bootstrap=fresh_bootstrap, partitions=PARTITIONS + 1, metrics_address="127.0.0.1:0"
    )
    with pytest.raises(SourceTopicError, match="has 2 partitions but the worker is configured for 3"):
        await run(config, stop=asyncio.Event())
