"""Prometheus metrics of the telephony gateway."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

from pipeline.metrics import LATENCY_BUCKETS_S as _FAST_BUCKETS

OPEN_LATENCY = Histogram(
    "callscope_ingest_open_latency_seconds",
    "Opening message received to the call accepted (AudioHook opened, generic started)",
    ["source"],
    buckets=_FAST_BUCKETS,
)
FRAME_DELIVERY = Histogram(
    "callscope_ingest_frame_delivery_seconds",
    "Message received on the socket to its record acknowledged by the broker",
    ["source"],
    buckets=_FAST_BUCKETS,
)
MESSAGES_IN = Counter("callscope_ingest_messages_total", "WebSocket messages received", ["source"])
FRAMES_IN = Counter("callscope_ingest_frames_total", "Audio frames put on the audio topic", ["source"])
BYTES_IN = Counter("callscope_ingest_bytes_total", "WebSocket message bytes received", ["source"])
FRAMES_DROPPED = Counter(
    "callscope_ingest_frames_dropped_total", "Audio frames received and not forwarded", ["source", "reason"]
)
CALLS_ACTIVE = Gauge("callscope_ingest_calls_active", "Connections open, per protocol", ["source"])
CALLS = Counter("callscope_ingest_calls_total", "Calls ended, by how they ended", ["source", "outcome"])
REJECTED = Counter(
    "callscope_ingest_rejected_upgrades_total", "Upgrade requests refused (auth, path)", ["source", "reason"]
)


@dataclass(frozen=True)
class SourceMetrics:
    """One protocol's metric children, looked up once: labels() costs more than inc() per frame."""

    messages: Counter
    bytes: Counter
    frames: Counter
    delivery: Histogram
    open_latency: Histogram


@cache
def for_source(source: str) -> SourceMetrics:
    return SourceMetrics(
        MESSAGES_IN.labels(source),
        BYTES_IN.labels(source),
        FRAMES_IN.labels(source),
        FRAME_DELIVERY.labels(source),
        OPEN_LATENCY.labels(source),
    )
