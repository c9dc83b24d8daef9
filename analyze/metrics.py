"""Prometheus metrics of the analysis stage."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pipeline.metrics import LATENCY_BUCKETS_S as _LATENCY_BUCKETS_S
from pipeline.metrics import SeenSegments, consumer_lag_gauge

TRANSCRIPT_RECORDS = Counter(
    "callscope_analyze_transcript_records_total",
    "Transcript records read, by event type ('invalid' for records that failed to parse).",
    ["type"],
)
ASSIST_EVENTS = Counter(
    "callscope_analyze_assist_events_total",
    "Assist events produced, by type and whether they came from a final segment.",
    ["type", "final"],
)
RULE_MATCHES = Counter(
    "callscope_analyze_rule_matches_total",
    "Hints and alerts emitted, by rule id.",
    ["rule_id"],
)
FINAL_TO_ASSIST_LATENCY = Histogram(
    "callscope_analyze_final_to_assist_latency_seconds",
    "From the transcriber emitting a final segment to this stage emitting its assist event.",
    ["type"],
    buckets=_LATENCY_BUCKETS_S,
)
PARTIAL_TO_ASSIST_LATENCY = Histogram(
    "callscope_analyze_partial_to_assist_latency_seconds",
    "From the transcriber emitting a partial segment to this stage emitting its assist event.",
    ["type"],
    buckets=_LATENCY_BUCKETS_S,
)
ACTIVE_CALLS = Gauge(
    "callscope_analyze_active_calls",
    "Calls this worker holds assist state for.",
)
RULE_RELOADS = Counter(
    "callscope_analyze_rule_reloads_total",
    "Rule-file changes seen by the hot reloader, by outcome (reloaded, rejected: old set kept).",
    ["outcome"],
)
COMPLIANCE_MISSES = Counter(
    "callscope_analyze_compliance_misses_total",
    "Compliance steps missed, by compliance item id.",
    ["item_id"],
)
CALL_STATE_OPS = Counter(
    "callscope_analyze_call_state_ops_total",
    "Per-call state table operations (CALLSCOPE_ANALYZE_STATE_STORE=table): saved, restored, unreadable,"
    " ended (state replaced by an end mark), expired (end mark dropped after the grace period).",
    ["op"],
)
RECORDS_REREAD = Counter(
    "callscope_analyze_records_reread_total",
    "Transcript records the consumer skipped (around a restart or rebalance), read again and analysed.",
)
RECORDS_AFTER_END = Counter(
    "callscope_analyze_records_after_call_end_total",
    "Transcript records of calls that had already ended here, delivered again and ignored.",
)
CONSUMER_LAG = consumer_lag_gauge("analyze")  # from faust's consumer, as the aiokafka stages
SEGMENTS_RESENT = Counter(
    "callscope_analyze_segments_resent_total",
    "Final segments read again under an id already seen for the call (a transcriber that took the call"
    " over re-sends them): analysed again, not observed as a latency.",
    ["type"],
)
SEGMENTS_RESENT.labels("final")


SEEN_FINALS = SeenSegments()  # final segment ids per open call
