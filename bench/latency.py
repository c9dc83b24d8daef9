"""Latency per stage, computed from the stage stamps the events themselves carry (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from analyze.events import AgentHint, AssistEvent, Sentiment, SupervisorAlert
from transcribe.events import FinalSegment, PartialSegment, TranscriptEvent


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Series:
    name: str
    values_s: tuple[float, ...]

    def row(self) -> str:
        if not self.values_s:
            return f"{self.name:<42} {'n=0':>6}"
        p50, p95 = percentile(self.values_s, 50), percentile(self.values_s, 95)
        return (
            f"{self.name:<42} {'n=' + str(len(self.values_s)):>6}  p50 {p50 * 1000:7.0f} ms"
            f"  p95 {p95 * 1000:7.0f} ms  max {max(self.values_s) * 1000:7.0f} ms"
        )


@dataclass(frozen=True)
class StoredSegment:
    segment_id: str
    emitted_at: float  # epoch seconds, transcriber clock
    stored_at: float  # epoch seconds, database clock (same box in the benchmark)


def stage_latencies(
    transcripts: Iterable[TranscriptEvent],
    assist: Iterable[AssistEvent],
    stored: Iterable[StoredSegment],
) -> list[Series]:
    """Audio captured -> partial, speech start -> first partial, end of speech -> final,
    final -> assist event (sentiment and rule events on finals), final -> row in PostgreSQL."""
    partial_lag: list[float] = []
    first_partial: dict[str, float] = {}
    finals: dict[str, FinalSegment] = {}
    for event in transcripts:
        match event:
            case PartialSegment(segment_id=sid, times=times):
                partial_lag.append(times.emitted_at - times.audio_captured_at)
                first_partial.setdefault(sid, times.emitted_at)
            case FinalSegment(segment_id=sid):
                finals.setdefault(sid, event)
            case _:
                pass

    speech_to_first_partial: list[float] = []
    end_to_final: list[float] = []
    for sid, final in finals.items():
        ended = final.times.speech_ended_at
        if ended is None:
            continue
        end_to_final.append(final.times.emitted_at - ended)
        if sid in first_partial:
            # Capture time of the turn's first audio: end of speech less the turn's length.
            speech_started = ended - (final.end_ms - final.start_ms) / 1000
            speech_to_first_partial.append(first_partial[sid] - speech_started)

    final_to_sentiment: list[float] = []
    final_to_rule_event: list[float] = []
    seen: set[str] = set()
    for event in assist:
        match event:
            case Sentiment(final=True, segment_id=sid) if sid not in seen:
                seen.add(sid)
                final_to_sentiment.append(event.emitted_at - event.segment_emitted_at)
            case AgentHint(on_final=True) | SupervisorAlert(on_final=True):
                final_to_rule_event.append(event.emitted_at - event.segment_emitted_at)
            case _:
                pass

    final_to_row = [s.stored_at - s.emitted_at for s in stored if s.segment_id in finals]
    return [
        Series("audio captured -> partial (every partial)", tuple(partial_lag)),
        Series("speech start -> first partial of a turn", tuple(speech_to_first_partial)),
        Series("end of speech -> final", tuple(end_to_final)),
        Series("final -> sentiment event", tuple(final_to_sentiment)),
        Series("final -> hint/alert fired on a final", tuple(final_to_rule_event)),
        Series("final -> row in PostgreSQL", tuple(final_to_row)),
    ]
