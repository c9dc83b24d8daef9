"""Prometheus metrics of the store worker."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from pipeline.metrics import LATENCY_BUCKETS_S

RECORDS = Counter(
    "callscope_store_records_total",
    "Records consumed by the store, by topic and outcome (stored, ignored, deadlettered).",
    ["topic", "outcome"],
)
ROWS_WRITTEN = Counter(
    "callscope_store_rows_written_total",
    "Rows upserted (after deduplication within the batch), by kind.",
    ["kind"],
)
BATCH_WRITE_SECONDS = Histogram(
    "callscope_store_batch_write_seconds",
    "Time to write one batch in one transaction, retries excluded.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WRITE_RETRIES = Counter(
    "callscope_store_write_retries_total",
    "Batch writes retried after a database error that a retry can fix.",
)
FINAL_TO_ROW_SECONDS = Histogram(
    "callscope_store_final_to_row_seconds",
    "Final segment emitted by the transcriber -> its row committed (wall clocks).",
    buckets=LATENCY_BUCKETS_S,
)
COMMIT_FAILURES = Counter(
    "callscope_store_commit_failures_total",
    "Offset commits that failed after the rows were written (the batch is re-read; writes are idempotent).",
)
