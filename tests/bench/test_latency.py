"""The benchmark's latency arithmetic, on hand-made events (no broker, no clock)."""

from analyze.events import AgentHint, Sentiment
from bench.latency import StoredSegment, percentile, stage_latencies
from transcribe.events import FinalSegment, PartialSegment, StageTimes


def _times(captured: float, emitted: float, ended: float | None = None) -> StageTimes:
    return StageTimes(
        audio_captured_at=captured, audio_received_at=captured, emitted_at=emitted, speech_ended_at=ended
    )


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([3.0], 95) == 3.0


def test_each_stage_latency_comes_from_the_stamps_of_its_own_events():
    seg = dict(call_id="c", leg="customer", segment_id="s1", start_ms=1000, end_ms=3000, text="x")
    transcripts = [
        PartialSegment(**seg, revision=0, times=_times(captured=101.0, emitted=101.25)),
        PartialSegment(**seg, revision=1, times=_times(captured=102.0, emitted=102.5)),
        FinalSegment(**seg, times=_times(captured=103.0, emitted=103.75, ended=103.0)),
    ]
    common = dict(call_id="c", leg="customer", segment_id="s1", segment_emitted_at=103.75)
    assist = [
        Sentiment(
            **common, final=True, compound=0.1, positive=0.1, negative=0.0, neutral=0.9, emitted_at=103.8
        ),
        Sentiment(
            **common, final=True, compound=0.1, positive=0.1, negative=0.0, neutral=0.9, emitted_at=109.0
        ),
        AgentHint(
            **common,
            event_id="e",
            on_final=True,
            rule_id="r",
            rule_version="1",
            matched="m",
            hint="h",
            emitted_at=103.85,
        ),
    ]
    stored = [StoredSegment("s1", emitted_at=103.75, stored_at=103.95), StoredSegment("other", 0.0, 9.0)]

    series = {s.name: s.values_s for s in stage_latencies(transcripts, assist, stored)}

    assert series["audio captured -> partial (every partial)"] == (0.25, 0.5)
    assert series["speech start -> first partial of a turn"] == (101.25 - 101.0,)
    assert series["end of speech -> final"] == (0.75,)
    assert [round(v, 3) for v in series["final -> sentiment event"]] == [0.05]  # a replayed copy is ignored
    assert [round(v, 3) for v in series["final -> hint/alert fired on a final"]] == [0.1]
    assert [round(v, 3) for v in series["final -> row in PostgreSQL"]] == [0.2]
