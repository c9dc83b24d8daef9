"""Prometheus metrics of the transcription stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from pipeline.metrics import LATENCY_BUCKETS_S as _LATENCY_BUCKETS
from pipeline.metrics import consumer_lag_gauge

FRAMES_IN = Counter("callscope_transcribe_frames_total", "Audio frames accepted for transcription")
RECORDS_IN = Counter("callscope_transcribe_records_total", "Records read from the audio topic")
PARTIAL_LATENCY = Histogram(
    "callscope_transcribe_partial_latency_seconds",
    "Capture of the newest audio covered to emission of a partial",
    buckets=_LATENCY_BUCKETS,
)
FINAL_LATENCY = Histogram(
    "callscope_transcribe_final_latency_seconds",
    "Capture of the end of speech to emission of its final",
    buckets=_LATENCY_BUCKETS,
)
FIRST_PARTIAL_LATENCY = Histogram(
    "callscope_transcribe_first_partial_latency_seconds",
    "Capture of the start of speech to emission of the turn's first partial",
    buckets=_LATENCY_BUCKETS,
)
# The three histograms above count first emissions only: a segment covering audio captured
# before this worker opened the leg (a worker taking over a call re-reads from the last commit)
# is counted here instead of as a latency of tens of seconds.
SEGMENTS_RESENT = Counter(
    "callscope_transcribe_segments_resent_total",
    "Segments re-emitted for audio captured before this worker opened the leg (takeover, restart)",
    ["type"],
)
CALLS_ACTIVE = Gauge("callscope_transcribe_calls_active", "Calls with at least one speech session open here")
SESSIONS_OPEN = Gauge("callscope_transcribe_sessions_open", "Speech sessions open (one per active leg)")
LEG_ERRORS = Counter("callscope_transcribe_leg_errors_total", "Session errors reported per leg", ["code"])
PARTITIONS_PAUSED = Gauge("callscope_transcribe_partitions_paused", "Partitions paused for backpressure")
PARTITIONS_HELD = Gauge(
    "callscope_transcribe_partitions_held_for_capacity",
    "Partitions held at a new call because this worker has max_live_calls open",
)
MAX_LIVE_CALLS = Gauge(
    "callscope_transcribe_max_live_calls",
    "This worker's configured limit of open calls (CALLSCOPE_TRANSCRIBE_MAX_LIVE_CALLS): with that many"
    " open, a partition is held at its next new call; two ASR sessions (legs) per call",
)
RECORDS_AFTER_CALL_END = Counter(
    "callscope_transcribe_records_after_call_end_total",
    "Records of a call that had already ended here (audio frames, a second call.ended): not transcribed,"
    " dead-lettered with reason call_already_ended",
)
PARTITION_BACKLOG_SECONDS = Gauge(
    "callscope_transcribe_partition_backlog_seconds",
    "Per partition: broker timestamp of the newest record read minus that of the newest record handed"
    " on to the calls' legs (seconds of the partition read and waiting in this worker; 0 when none waits)",
    ["partition"],
)
LEG_BACKLOG_SECONDS = Gauge(
    "callscope_transcribe_leg_backlog_seconds",
    "Per leg role, the worst open leg here: now minus the capture time of the newest audio handed to its"
    " speech session (how far behind live the engine is being fed; ~0.02 s when keeping up)",
    ["leg"],
)
CONSUMER_LAG = consumer_lag_gauge("transcribe")  # the audio topic's partitions this worker holds
CALLS_ENDED_HERE = Counter(
    "callscope_transcribe_calls_ended_by_worker_total",
    "Calls this worker ended itself (no call.ended came), by reason",
    ["reason"],
)

# Realtime (vLLM-compatible) engine client
REALTIME_CONNECTIONS_OPEN = Gauge(
    "callscope_transcribe_realtime_connections_open", "WebSocket connections open to the realtime server"
)
REALTIME_RECONNECTS = Counter(
    "callscope_transcribe_realtime_reconnects_total", "Reconnects to the realtime server, by cause", ["code"]
)
AUDIO_BACKLOG_SECONDS = Gauge(
    "callscope_transcribe_audio_backlog_seconds", "Audio received by sessions and not yet sent to the engine"
)
FIRST_DELTA_LATENCY = Histogram(
    "callscope_transcribe_first_delta_latency_seconds",
    "Start of an utterance (commit) to its first transcription.delta",
    buckets=_LATENCY_BUCKETS,
)
FRAMES_DROPPED = Counter(
    "callscope_transcribe_frames_dropped_total", "Frames not transcribed, by reason", ["reason"]
)

# Known label values start at 0, so dashboards and alerts see a series (and rate() a zero) before
# the first error instead of "no data". The codes are transcribe/session.py's SpeechError codes.
KNOWN_ERROR_CODES = (
    "speech_error",
    "engine_unavailable",
    "engine_failure",
    "invalid_audio",
    "session_closed",
)
for _code in KNOWN_ERROR_CODES:
    LEG_ERRORS.labels(_code)
    REALTIME_RECONNECTS.labels(_code)
for _type in ("partial", "final"):
    SEGMENTS_RESENT.labels(_type)
FRAMES_DROPPED.labels("leg_failed")
for _reason in ("idle", "max_duration"):
    CALLS_ENDED_HERE.labels(_reason)


class _Stream(Protocol):
    ended: bool


class LegFeed:
    """The capture time of the newest audio handed to each open leg's session, for LEG_BACKLOG_SECONDS.

    Labelled by leg role, not by call: two series per worker whatever the number of calls. A leg
    is forgotten when its call ends or leaves the worker, and skipped once its stream has ended
    (an idle leg retired), so a silent leg does not read as a growing backlog."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._fed: dict[tuple[str, str], tuple[float, _Stream]] = {}

    def fed(self, call_id: str, leg: str, captured_at: float, stream: _Stream) -> None:
        self._fed[(call_id, leg)] = (captured_at, stream)

    def forget(self, call_id: str) -> None:
        for leg in ("agent", "customer"):
            self._fed.pop((call_id, leg), None)

    def behind_s(self, leg: str) -> float:
        """Seconds the worst open `leg` (role) is behind live; 0 with none open."""
        fed = list(self._fed.items())  # a copy: scrapes run in the metrics server's thread
        oldest = min((at for (_, role), (at, s) in fed if role == leg and not s.ended), default=None)
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)


LEG_FEED = LegFeed()
for _leg in ("agent", "customer"):
    LEG_BACKLOG_SECONDS.labels(_leg).set_function(lambda leg=_leg: LEG_FEED.behind_s(leg))
