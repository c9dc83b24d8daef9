"""What one benchmark run measured, and how it is printed and written as JSON (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from analyze.events import AgentHint, AssistEvent, Sentiment, SupervisorAlert
from bench.latency import Series, percentile
from bench.procstat import Machine
from transcribe.events import FinalSegment, PartialSegment, TranscriptEvent


@dataclass(frozen=True)
class EventCounts:
    partials: int = 0
    finals: int = 0
    sentiments: int = 0
    hints: int = 0
    alerts: int = 0
    stored_segments: int = 0

    @classmethod
    def of(
        cls, transcripts: Iterable[TranscriptEvent], assist: Iterable[AssistEvent], stored_segments: int
    ) -> EventCounts:
        counts = {"partials": 0, "finals": 0, "sentiments": 0, "hints": 0, "alerts": 0}
        for event in [*transcripts, *assist]:
            match event:
                case PartialSegment():
                    counts["partials"] += 1
                case FinalSegment():
                    counts["finals"] += 1
                case Sentiment():
                    counts["sentiments"] += 1
                case AgentHint():
                    counts["hints"] += 1
                case SupervisorAlert():
                    counts["alerts"] += 1
                case _:
                    pass
        return cls(**counts, stored_segments=stored_segments)

    @property
    def assist_events(self) -> int:
        return self.sentiments + self.hints + self.alerts


@dataclass(frozen=True)
class BenchReport:
    """Latency per stage from the events' own stamps; CPU per stage per second of call audio.

    A call-second is one second of a two-leg call, i.e. two leg-seconds of audio.
    """

    calls: int
    call_audio_s: float  # sum of the calls' durations
    wall_s: float  # from the start of the replay until PostgreSQL held every call
    speed: float
    concurrency: int
    codec: str
    sample_rate_hz: int
    partitions: int
    series: tuple[Series, ...]
    cpu_s: dict[str, float]  # process -> CPU seconds (user + system) over the same window
    counts: EventCounts
    machine: Machine
    notes: tuple[str, ...] = field(default=())

    def cpu_per_call_second(self, name: str) -> float:
        return self.cpu_s[name] / self.call_audio_s if self.call_audio_s > 0 else math.nan

    def render(self) -> str:
        pace = f"{self.speed:g}x real time" if self.speed > 0 else "as fast as possible"
        c = self.counts
        lines = [
            f"pipeline benchmark: {self.calls} calls, {self.call_audio_s:.1f} s of call audio "
            f"({2 * self.call_audio_s:.1f} leg-seconds), {pace}, {self.concurrency} at a time, "
            f"{self.codec} {self.sample_rate_hz} Hz, {self.partitions} partitions",
            f"machine: {self.machine.describe()}",
            f"events: {c.partials} partials, {c.finals} finals, {c.assist_events} assist events "
            f"({c.sentiments} sentiment, {c.hints} hints, {c.alerts} alerts), "
            f"{c.stored_segments} segments in PostgreSQL",
            "",
            "latency per stage (differences of the stamps the events carry; one box, one clock)",
            *(s.row() for s in self.series),
            "",
            f"CPU per process, user + system, from replay start until every call was stored "
            f"({self.wall_s:.1f} s wall)",
            f"{'process':<34} {'CPU s':>8}  {'per call-second':>15}  {'per leg-second':>14}",
        ]
        for name, seconds in self.cpu_s.items():
            ratio = self.cpu_per_call_second(name)
            lines.append(f"{name:<34} {seconds:8.2f}  {ratio:15.3f}  {ratio / 2:14.3f}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "call_audio_s": round(self.call_audio_s, 3),
            "wall_s": round(self.wall_s, 3),
            "speed": self.speed,
            "concurrency": self.concurrency,
            "codec": self.codec,
            "sample_rate_hz": self.sample_rate_hz,
            "partitions": self.partitions,
            "machine": {
                "cpus": self.machine.cpus,
                "cpu_model": self.machine.cpu_model,
                "load_average_1m": self.machine.load_average_1m,
            },
            "counts": {**self.counts.__dict__, "assist_events": self.counts.assist_events},
            "latency_s": {s.name: _summary(s) for s in self.series},
            "cpu": {
                name: {"cpu_s": round(sec, 3), "per_call_second": round(self.cpu_per_call_second(name), 4)}
                for name, sec in self.cpu_s.items()
            },
            "notes": list(self.notes),
        }


def _summary(series: Series) -> dict[str, float | int | None]:
    values = series.values_s
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 4),
        "p95": round(percentile(values, 95), 4),
        "max": round(max(values), 4),
    }
