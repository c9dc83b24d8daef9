"""What every stage's metrics share: the latency buckets and the naming scheme.

Names are `callscope_<stage>_<what>_seconds` for durations (histograms), `..._total` for counters
and a plain noun for gauges (`..._active`, `..._open`, `..._paused`). Each stage declares its own
in its `metrics.py`; dead letters are the one metric every stage shares
(`pipeline.deadletter.DEAD_LETTERS`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import Gauge

# From a millisecond (socket -> broker on one box) to a minute (a final behind a long backlog):
# the latencies this product promises sit between tens of milliseconds and tens of seconds, and
# the dashboards' p50/p95/p99 need a bucket edge near each target (0.5 s, 1 s, 2 s, 3 s).
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)


class SeenSegments:
    """The final segment ids seen per open call, so a re-sent final is told from a first emission.

    Bounded: at most `per_call` ids a call (the oldest forgotten first: a re-send is of the turns
    just before a takeover) and `calls` calls (the least recently seen forgotten first); a call's
    ids go when it ends (`forget`)."""

    def __init__(self, *, per_call: int = 2_048, calls: int = 10_000) -> None:
        self._per_call, self._calls = per_call, calls
        self._seen: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    def first(self, call_id: str, segment_id: str) -> bool:
        """True the first time this call's `segment_id` is seen here."""
        ids = self._seen.get(call_id)
        if ids is None:
            ids = self._seen[call_id] = OrderedDict()
            while len(self._seen) > self._calls:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(call_id)
        if segment_id in ids:
            return False
        ids[segment_id] = None
        if len(ids) > self._per_call:
            ids.popitem(last=False)
        return True

    def forget(self, call_id: str) -> None:
        self._seen.pop(call_id, None)

    def __len__(self) -> int:
        return len(self._seen)


def consumer_lag_gauge(stage: str) -> Gauge:
    """`callscope_<stage>_consumer_lag_records{topic, partition}`, for report_consumer_lag."""
    return Gauge(
        f"callscope_{stage}_consumer_lag_records",
        "Records on the broker this consumer has not read yet, per assigned partition: the partition's"
        " high watermark from the latest fetch response minus the consumer's position (Apache Kafka:"
        " exact; the embedded Tansu: see README 'Consumer lag').",
        ["topic", "partition"],
    )


class LagSource(Protocol):
    """The AIOKafkaConsumer methods report_consumer_lag reads."""

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    async def position(self, partition: TopicPartition) -> int | None: ...


async def report_consumer_lag(consumer: LagSource, gauge: Gauge, *, interval_s: float = 1.0) -> None:
    """Every `interval_s` until cancelled, set_consumer_lag."""
    reported: set[tuple[str, str]] = set()
    while True:
        reported = await set_consumer_lag(consumer, gauge, reported)
        await asyncio.sleep(interval_s)


async def set_consumer_lag(
    consumer: LagSource, gauge: Gauge, reported: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Set `gauge` to each assigned partition's lag; the partitions `reported` before and no longer
    assigned lose their series (their new owner reports them). Returns the partitions reported.

    The high watermark comes with each fetch response: a partition this consumer has paused is
    not fetched, so its lag stays at what the last fetch said until it is resumed."""
    current: set[tuple[str, str]] = set()
    for tp in sorted(consumer.assignment()):
        high = consumer.highwater(tp)
        if high is None:  # nothing fetched from it yet
            continue
        try:
            position = await consumer.position(tp)
        except (IllegalStateError, KafkaError):  # revoked meanwhile, or no position yet
            continue
        if position is None:  # faust's consumer: no position yet
            continue
        labels = (tp.topic, str(tp.partition))
        gauge.labels(*labels).set(max(0, high - position))
        current.add(labels)
    for labels in reported - current:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
    return current
