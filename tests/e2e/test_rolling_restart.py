"""A rolling restart of every stage during live calls: nothing lost, nothing stored twice.

Real processes on a real broker and PostgreSQL (tests/e2e/running.py), real speech through real
Whisper: two transcription workers, the analysis and the store stage are each stopped with
SIGTERM and started again in turn while calls go on (tests/e2e/rolling.py). The figures (final
latency before and during the restarts) are printed; `python -m bench.failover --scenario
rolling` prints the same. The gateway is not restarted here: a media gateway's restart ends the
WebSocket streams connected to it (README, "Failover").
"""

from __future__ import annotations

import pytest

from tests.calls import TestCall, standard_calls
from tests.e2e.rolling import delays, rolling_restart, said_twice, turns_lost
from tests.e2e.running import running_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR")]


@pytest.fixture(scope="module")
def calls() -> list[TestCall]:
    try:
        return standard_calls()
    except FileNotFoundError as exc:  # espeak-ng, sox or Asterisk prompts: `deploy/run.sh test` installs them
        pytest.skip(f"test speech unavailable: {exc}")


async def test_every_stage_restarted_in_turn_during_live_calls_loses_and_duplicates_nothing(
    calls: list[TestCall], tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("CALLSCOPE_LOG_FORMAT", "json")  # the harness reads the workers' assignments
    # On Tansu a restarted member rejoins after ~1.7 x its group's session timeout (the store's
    # default 10 s: ~20 s): shorter ones keep the test short; the benchmark measures both.
    monkeypatch.setenv("CALLSCOPE_STORE_SESSION_TIMEOUT_MS", "3000")
    monkeypatch.setenv("CALLSCOPE_ANALYZE_SESSION_TIMEOUT_S", "6")
    async with running_pipeline(tmp_path) as pipeline:
        run = await rolling_restart(pipeline, calls, prefix="rolling")
        summaries = {call_id: await pipeline.wait_until_stored(call_id) for call_id in run.calls}

        assert [(r.name, r.exit_code) for r in run.restarts] == [
            ("transcribe", 0),
            ("transcribe#2", 0),
            ("analyze", 0),
            ("store", 0),
        ], pipeline.explain("a stage did not drain and exit 0 on SIGTERM")
        for call_id, call in run.calls.items():
            summary = summaries[call_id]
            on_topic = pipeline.tap.calls[call_id]
            assert summary.call is not None and summary.call.end_reason == "hangup"
            assert await pipeline.call_row_count(call_id) == 1
            rows = await pipeline.segment_row_counts(call_id)
            assert rows == dict.fromkeys(on_topic.finals, 1), pipeline.explain(
                f"{call_id}: stored segments differ from the transcript topic"
            )
            assert turns_lost(call, summary) == 0, pipeline.explain(f"{call_id}: a turn spoken is not stored")
            assert said_twice(summary) == 0, pipeline.explain(f"{call_id}: a turn stored twice")
        figures = delays(pipeline, run, summaries)
    with capsys.disabled():
        print("\n  rolling restart: " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
