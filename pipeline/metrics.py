"""What every stage's metrics share: the latency buckets and the naming scheme.

Names are `callscope_<stage>_<what>_seconds` for durations (histograms), `..._total` for counters
and a plain noun for gauges (`..._active`, `..._open`, `..._paused`). Each stage declares its own
in its `metrics.py`; dead letters are the one metric every stage shares
(`pipeline.deadletter.DEAD_LETTERS`).
"""

from __future__ import annotations

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
