"""Cap the fetch wait of faust's Kafka consumer, which faust 0.15 hard-codes to 1500 ms.

A fetch for partitions with no new records is answered when the wait runs out, and Tansu does not
answer it early when records arrive meanwhile: with 1.5 s, a final waited ~0.5-1 s before the
worker even saw it (measured: final -> assist p50 743 ms at 200 legs; 13 ms with a 10 ms wait).
A short wait costs a few more empty fetches per second on an idle worker, nothing on a busy one.
"""

from __future__ import annotations

import types
from typing import Any

import aiokafka
import faust.transport.drivers.aiokafka as faust_aiokafka


class _AiokafkaWithFetchWait(types.ModuleType):
    """Stands in for the `aiokafka` module inside faust's driver; only the consumer differs."""

    def __init__(self, fetch_max_wait_ms: int) -> None:
        super().__init__("aiokafka")
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(aiokafka, name)

    def AIOKafkaConsumer(self, *args: Any, **kwargs: Any) -> aiokafka.AIOKafkaConsumer:  # noqa: N802
        kwargs["fetch_max_wait_ms"] = self.fetch_max_wait_ms
        return aiokafka.AIOKafkaConsumer(*args, **kwargs)


def cap_fetch_wait(fetch_max_wait_ms: int) -> None:
    """Make every faust consumer created from now on in this process use `fetch_max_wait_ms`."""
    faust_aiokafka.aiokafka = _AiokafkaWithFetchWait(fetch_max_wait_ms)  # type: ignore[assignment]
