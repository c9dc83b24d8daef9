"""What every stage's metrics share: the latency buckets and the naming scheme.

Names are `callscope_<stage>_<what>_seconds` for durations (histograms), `..._total` for counters
and a plain noun for gauges (`..._active`, `..._open`, `..._paused`). Each stage declares its own
in its `metrics.py`; dead letters are the one metric every stage shares
(`pipeline.deadletter.DEAD_LETTERS`).
"""

from __future__ import annotations

from collections import OrderedDict

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
