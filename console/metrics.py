"""Prometheus metrics of the console."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pipeline.metrics import LATENCY_BUCKETS_S

EVENTS_FOLDED = Counter(
    "callscope_console_events_total", "Transcript and assist records folded into the live state", ["topic"]
)
EVENTS_REJECTED = Counter(
    "callscope_console_rejected_events_total", "Records the live feed could not parse", ["topic", "reason"]
)
LIVE_CALLS = Gauge("callscope_console_live_calls", "Active calls on the live wall")
STREAMS_OPEN = Gauge("callscope_console_streams_open", "Open live streams", ["kind"])
DELIVERY_LATENCY = Histogram(
    "callscope_console_agent_delivery_latency_seconds",
    "Assist event emitted by analyze -> written to an agent's stream",
    buckets=LATENCY_BUCKETS_S,
)
FEED_UP = Gauge("callscope_console_feed_up", "1 while the live feed reads from the broker")
HTTP_REQUESTS = Counter(
    "callscope_console_http_requests_total", "API requests by route and status", ["status"]
)
