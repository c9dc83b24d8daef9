"""Prometheus metrics of the store worker."""

from __future__ import annotations

from collections import OrderedDict

from prometheus_client import Counter, Histogram

from pipeline.metrics import LATENCY_BUCKETS_S, consumer_lag_gauge
from store.rows import CallEndRow, CallStartRow, LegErrorRow, Row, SegmentRow

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
CONSUMER_LAG = consumer_lag_gauge("store")
SEGMENTS_RESENT = Counter(
    "callscope_store_segments_resent_total",
    "Final segments written again under an id whose text PostgreSQL already held (a transcriber that"
    " took the call over re-sends them, a restarted store re-reads them): not observed as latency.",
)
RECORDS_AFTER_CALL_END = Counter(
    "callscope_store_records_after_call_end_total",
    "Transcript records (segments, leg errors) of a call whose call.ended this worker already read:"
    " stored all the same (upserts), counted here.",
)


class EndedCalls:
    """The calls whose call.ended this worker read (the newest `remembered` of them)."""

    def __init__(self, remembered: int = 10_000) -> None:
        self._remembered = remembered
        self._ended: OrderedDict[str, None] = OrderedDict()

    def after_end(self, row: Row) -> bool:
        """Note a call.ended row; True for a segment or leg error of a call already ended."""
        if isinstance(row, CallEndRow):
            self._ended[row.call_id] = None
            self._ended.move_to_end(row.call_id)
            while len(self._ended) > self._remembered:
                self._ended.popitem(last=False)
            return False
        if isinstance(row, CallStartRow):  # the same id started again: a new call
            self._ended.pop(row.call_id, None)
            return False
        return isinstance(row, SegmentRow | LegErrorRow) and row.call_id in self._ended


ENDED_CALLS = EndedCalls()
