"""The benchmark measures every stage from a real run; its /proc reading and report on hand-made input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import procstat
from bench.latency import Series
from bench.pipeline import BENCH_PROCESS, repeated, run_bench
from bench.report import BenchReport, EventCounts
from ingest.demo import DEMO_CALL_WAV
from ingest.replay import ReplayCall
from ingest.wavsource import Recording

SHORT_CALL_S = 13  # the demo call's first two agent turns


def _short_demo_call() -> ReplayCall:
    full = ReplayCall.from_stereo(DEMO_CALL_WAV, call_id="bench-test-1")
    rate = full.recording.sample_rate_hz
    legs = {leg: samples[: SHORT_CALL_S * rate] for leg, samples in full.recording.legs.items()}
    return ReplayCall(recording=Recording(legs=legs, sample_rate_hz=rate), call_id=full.call_id)


@pytest.mark.e2e
async def test_bench_reports_latency_of_every_stage_and_cpu_of_every_process(tmp_path: Path) -> None:
    given = ("CALLSCOPE_KAFKA_BOOTSTRAP", "CALLSCOPE_DATABASE_URL")  # embedded ones for the test
    environ = {k: v for k, v in os.environ.items() if k not in given}

    report = await run_bench(
        [_short_demo_call()], speed=0, concurrency=1, partitions=2, environ=environ, logdir=tmp_path
    )

    series = {s.name: s.values_s for s in report.series}
    for name in (
        "audio captured -> partial (every partial)",
        "speech start -> first partial of a turn",
        "end of speech -> final",
        "final -> sentiment event",
        "final -> row in PostgreSQL",
    ):
        assert series[name], f"no measurements for {name!r}"
    # Hints and alerts fire once per turn, usually on a partial: an empty series there is normal.
    assert report.counts.finals > 0 and report.counts.stored_segments == report.counts.finals
    for stage in ("transcribe", "analyze", "store", BENCH_PROCESS):
        assert report.cpu_s[stage] > 0, stage
    assert report.call_audio_s == pytest.approx(SHORT_CALL_S)
    assert "end of speech -> final" in report.render()


def test_cpu_seconds_are_read_from_proc_stat_even_when_the_name_has_spaces(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    (tmp_path / "42").mkdir()
    rest = ["S", "7"] + ["0"] * 9 + [str(3 * ticks), str(ticks)] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text(f"42 (odd name) x) {' '.join(rest)}\n")
    (tmp_path / "42" / "comm").write_text("odd name) x\n")

    assert procstat.process_cpu_seconds(42, proc=tmp_path) == 4.0
    assert procstat.process_cpu_seconds(43, proc=tmp_path) is None
    assert procstat.child_pids_named(7, "odd name) x", proc=tmp_path) == [42]
    assert procstat.process_cpu_seconds(os.getpid()) > 0


def test_report_gives_cpu_per_call_second_and_per_leg_second() -> None:
    report = BenchReport(
        calls=2,
        call_audio_s=100.0,
        wall_s=60.0,
        speed=1.0,
        concurrency=2,
        codec="mulaw",
        sample_rate_hz=8000,
        partitions=8,
        series=(Series("end of speech -> final", (0.5, 0.7)),),
        cpu_s={"transcribe": 40.0},
        counts=EventCounts(partials=10, finals=4, sentiments=14),
        machine=procstat.Machine(cpus=2, cpu_model="test cpu", load_average_1m=0.5),
    )

    assert report.cpu_per_call_second("transcribe") == 0.4
    text = report.render()
    assert "200.0 leg-seconds" in text and "0.400" in text and "0.200" in text
    figures = report.to_json()["latency_s"]["end of speech -> final"]
    assert figures == {"n": 2, "p50": 0.5, "p95": 0.7, "max": 0.7}


def test_repeated_calls_each_get_their_own_call_id() -> None:
    call = _short_demo_call()
    ids = [c.call_id for c in repeated([call, call], 3)]
    assert len(ids) == 6 and len(set(ids)) == 6
