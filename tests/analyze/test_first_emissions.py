"""Analyze latency counts first emissions only: a final re-sent (same segment id, as a transcriber
that took the call over sends it) is analysed again and counted as re-sent, not as a latency.
Real embedded broker, the worker as `callscope analyze` runs it, its /metrics scraped."""

from __future__ import annotations

import asyncio
import re
import time

from prometheus_client import REGISTRY

from analyze.config import AnalyzeConfig
from analyze.events import ComplianceState, Sentiment, parse_assist_event
from deploy.runtime import free_port
from pipeline.kafka import create_topics
from pipeline.metrics import SeenSegments
from pipeline.topics import TOPICS
from tests.analyze.test_worker import (
    DEADLINE_S,
    PARTITIONS,
    _call,
    _collect_until,
    _produce,
    _running_worker,
    _scrape,
)
from transcribe.events import FinalSegment, TranscriptCallEnded


def _sample(scraped: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", scraped, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def _counted(name: str, **labels: str) -> float:
    """A counter as this process's registry holds it now (0 before its first count)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_resent_final_is_counted_as_resent_not_as_a_latency(fresh_bootstrap: str) -> None:
    await create_topics(fresh_bootstrap, PARTITIONS)
    call = _call("call-resent", "I want to cancel my account")
    finals = [e for e in call if isinstance(e, FinalSegment)]
    end = call.index(next(e for e in call if isinstance(e, TranscriptCallEnded)))
    # The customer's final again before the call ends, as a worker taking the call over sends it.
    events = [*call[:end], finals[1], call[end]]
    await _produce(fresh_bootstrap, [(0, b"call-resent", e.to_bytes()) for e in events])

    port = free_port()
    config = AnalyzeConfig(
        kafka_bootstrap=fresh_bootstrap,
        partitions=PARTITIONS,
        app_id="callscope-analyze-resent-test",
        session_timeout_s=6,
        metrics_address=f"127.0.0.1:{port}",
    )

    def call_closed(seen: list) -> bool:  # its checklist closes after the re-sent final was read
        return any(isinstance(e, ComplianceState) and e.call_ended for e in seen)

    lag = f'callscope_analyze_consumer_lag_records{{partition="0",topic="{TOPICS.transcripts}"}}'
    resent = 'callscope_analyze_segments_resent_total{type="final"}'
    latencies = 'callscope_analyze_final_to_assist_latency_seconds_count{type="sentiment"}'
    # The worker runs in this process: its counters go on from the tests that ran before.
    before = {
        resent: _counted("callscope_analyze_segments_resent_total", type="final"),
        latencies: _counted("callscope_analyze_final_to_assist_latency_seconds_count", type="sentiment"),
    }
    async with _running_worker(config):
        assist = await _collect_until(fresh_bootstrap, TOPICS.assist, parse_assist_event, call_closed)
        deadline = time.monotonic() + DEADLINE_S
        while lag not in (scraped := await asyncio.to_thread(_scrape, port)):  # reported every second
            assert time.monotonic() < deadline, "no consumer lag reported"
            await asyncio.sleep(0.5)

    assert _sample(scraped, resent) - before[resent] == 1
    observed = _sample(scraped, latencies) - before[latencies]
    assert observed == len(finals) == 3  # first emissions only
    assert _sample(scraped, lag) == 0  # every record of the partition read
    # The same text again: the policy sends nothing new for it (its events went out already).
    assert sum(1 for e in assist if isinstance(e, Sentiment) and e.final) == 3


def test_seen_segments_are_bounded_per_call_and_in_calls_and_go_with_the_call() -> None:
    seen = SeenSegments(per_call=2, calls=2)
    assert seen.first("c1", "s1") and seen.first("c1", "s2") and not seen.first("c1", "s1")
    assert seen.first("c1", "s3")  # s1 forgotten: at most two ids a call
    assert seen.first("c1", "s1")
    seen.first("c2", "s1")
    seen.first("c3", "s1")  # c1 least recently seen: forgotten
    assert len(seen) == 2 and seen.first("c1", "s1")  # c1 is new again; c2 goes
    seen.forget("c1")
    assert len(seen) == 1 and not seen.first("c3", "s1")
