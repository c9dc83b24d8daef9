"""Consumer lag from the consumer itself (fetch-response high watermark minus position), measured
against the real embedded broker, whose ListOffsets LATEST is wrong for multi-record batches."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from pipeline.kafka import create_topics, make_producer
from pipeline.metrics import set_consumer_lag
from pipeline.topics import Topics

TOPICS = Topics(audio="lag-audio", transcripts="lag-transcripts", assist="lag-assist", deadletter="lag-dl")
BATCHES, PER_BATCH = 5, 10  # the last batch holds several records: where ListOffsets goes wrong


async def test_lag_is_the_records_not_yet_read_even_where_the_brokers_list_offsets_is_wrong(
    bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await create_topics(bootstrap, partitions=2, topics=TOPICS)
    tp = TopicPartition(TOPICS.audio, 0)
    producer = make_producer(bootstrap, client_id="lag-test")
    await producer.start()
    try:
        for _ in range(BATCHES):
            sent = [await producer.send(tp.topic, b"x" * 100, partition=0) for _ in range(PER_BATCH)]
            await producer.flush()  # one batch of PER_BATCH records
            assert [(await f).offset for f in sent][-1] >= PER_BATCH - 1
    finally:
        await producer.stop()
    total = BATCHES * PER_BATCH

    registry = CollectorRegistry()
    gauge = Gauge("lag_records", "test", ["topic", "partition"], registry=registry)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        list_offsets_end = (await consumer.end_offsets([tp]))[tp]
        reported: set[tuple[str, str]] = set()
        read, lags = 0, []
        for _ in range(4 * total // 7):  # bounded: 7 records a fetch
            batches = await consumer.getmany(tp, timeout_ms=2_000, max_records=7)
            read += sum(len(records) for records in batches.values())
            reported = await set_consumer_lag(consumer, gauge, reported)
            lags.append(
                (read, registry.get_sample_value("lag_records", {"topic": tp.topic, "partition": "0"}))
            )
            if read == total:
                break
        consumer.unsubscribe()
        consumer.assign([TopicPartition(TOPICS.audio, 1)])
        assert await set_consumer_lag(consumer, gauge, reported) == set()  # partition 0 went
    finally:
        await consumer.stop()

    assert read == total
    assert all(lag == total - n for n, lag in lags), lags  # exact after every fetch
    assert lags[-1] == (total, 0)
    with capsys.disabled():  # the figure for the README: what kafka-exporter's source says here
        print(f"\n  {total} records: ListOffsets LATEST {list_offsets_end}, fetch high watermark {total}")
