"""Failover of transcription workers: real processes on the real broker (Tansu), live calls.

The workers run the fake session factory (a final per 500 ms of audio, at once): these tests are
about group membership, rebalances and commits. bench/failover.py runs the same scenarios on the
real engine and prints the times.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import pytest

from pipeline.kafka import create_topics
from tests.e2e.failover import (
    TranscriptTap,
    Worker,
    assigned_partitions,
    call_on_partition,
    frozen_capable_broker,
    produce_silent_calls,
    start_worker,
    until,
)

pytestmark = pytest.mark.e2e
PARTITIONS = 4
CALL_S = 16.0
JOIN_DEADLINE_S = 60.0
CALLS_DEADLINE_S = 90.0


async def _run(
    bootstrap: str, tmp_path: Path, scenario, env: dict[str, str] | None = None
) -> tuple[TranscriptTap, list[str], dict]:
    await create_topics(bootstrap, PARTITIONS)
    tap = TranscriptTap(bootstrap, PARTITIONS)
    tapping = asyncio.create_task(tap.run(), name="failover-tap")
    workers: list[Worker] = []
    calls = [call_on_partition(p, PARTITIONS, f"{tmp_path.name}-call") for p in range(PARTITIONS)]
    producing: asyncio.Task[None] | None = None
    try:
        a = await start_worker("a", tmp_path, bootstrap, PARTITIONS, env=env)
        workers.append(a)
        await until(
            "for worker a to own every partition",
            lambda: [p for p in assigned_partitions(a) if len(p) == PARTITIONS],
            JOIN_DEADLINE_S,
            workers=workers,
        )
        producing = asyncio.create_task(produce_silent_calls(bootstrap, calls, CALL_S), name="failover-calls")
        await until(
            "for a final of every call",
            lambda: all(tap.calls[c].finals for c in calls),
            JOIN_DEADLINE_S,
            workers=workers,
        )
        seen = await scenario(workers, tap, calls)
        await until(
            "for every call to end",
            lambda: all(tap.calls[c].ended for c in calls),
            CALLS_DEADLINE_S,
            workers=workers,
        )
        await producing
        return tap, calls, seen
    finally:
        if producing is not None:
            producing.cancel()
        for worker in workers:
            if worker.proc.returncode is None:
                worker.signal(signal.SIGKILL)
                await worker.proc.wait()
        tapping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tapping


async def _start_b(workers: list[Worker], tmp_path: Path, bootstrap: str) -> Worker:
    b = await start_worker("b", tmp_path, bootstrap, PARTITIONS)
    workers.append(b)
    await until(
        "for worker b to own partitions",
        lambda: [p for p in assigned_partitions(b) if p],
        JOIN_DEADLINE_S,
        workers=workers,
    )
    return b


async def _b_joined(
    workers: list[Worker], tap: TranscriptTap, calls: list[str], tmp_path: Path, bootstrap: str
) -> tuple[Worker, Worker, list[str]]:
    """Start worker b beside a, wait until a settled after the rebalance and b emits finals of
    the calls it took; returns a, b and those calls."""
    a = workers[0]
    b = await _start_b(workers, tmp_path, bootstrap)
    await until(
        "for worker a to settle after b joined",
        lambda: a.logged("partitions kept their calls"),
        JOIN_DEADLINE_S,
        workers=workers,
    )
    moved = [calls[p] for p in assigned_partitions(b)[-1]]
    await until("for b's first finals", _new_finals(tap, moved, time.monotonic() + 1), 30, workers=workers)
    return a, b, moved


def _kept_by_a(a: Worker) -> set[int]:
    """The partitions worker a kept through its first rebalance (its log says so)."""
    kept = a.logged("partitions kept their calls")
    assert kept, "worker a logged no kept partitions"
    return set(kept[0]["partitions"])


def _assert_nothing_lost(tap: TranscriptTap, calls: list[str]) -> None:
    for call_id in calls:
        seen = tap.calls[call_id]
        assert seen.ended, call_id
        assert seen.uncovered_ms("customer", int(CALL_S * 1000)) == 0, f"{call_id}: audio with no final"


def _assert_said_once(tap: TranscriptTap, calls: list[str]) -> None:
    """No final sent twice, and no two finals over the same audio: a worker taking a call over
    resumed where the finals it could see ended, it did not decode the call again."""
    for call_id in calls:
        seen = tap.calls[call_id]
        starts = [a.final.start_ms for a in seen.finals]
        again = sorted({s for s in starts if starts.count(s) > 1})
        assert seen.resent() == 0, f"{call_id}: finals sent again, starting at (ms) {again}; all: {starts}"
        spans = sorted((a.final.start_ms, a.final.end_ms) for a in seen.finals)
        overlaps = [(x, y) for x, y in zip(spans, spans[1:], strict=False) if y[0] < x[1]]
        assert not overlaps, f"{call_id}: finals over the same audio: {overlaps[:3]}"


def _new_finals(tap: TranscriptTap, calls: list[str], since: float):
    return lambda: all(any(a.at > since for a in tap.calls[c].finals) for c in calls)


async def test_a_worker_joining_and_leaving_leaves_the_other_workers_calls_alone(bootstrap, tmp_path):
    async def join_then_leave(workers, tap, calls):
        a, b, _ = await _b_joined(workers, tap, calls, tmp_path, bootstrap)
        b_parts = set(assigned_partitions(b)[-1])
        b.signal(signal.SIGTERM)
        assert await b.wait(JOIN_DEADLINE_S) == 0, "worker b did not drain cleanly"
        await until(
            "for a to own every partition again",
            lambda: len(assigned_partitions(a)[-1]) == PARTITIONS,
            JOIN_DEADLINE_S,
            workers=workers,
        )
        return {"kept": _kept_by_a(a), "b": b_parts}

    tap, calls, seen = await _run(bootstrap, tmp_path, join_then_leave)

    assert seen["kept"] and seen["kept"].isdisjoint(seen["b"]), seen
    for partition in seen["kept"]:
        kept_call = tap.calls[calls[partition]]
        ends = [a.final.end_ms for a in kept_call.finals]
        assert ends == sorted(ends) and len(ends) == len(set(ends)), "a kept call was read again"
    _assert_said_once(tap, calls)
    _assert_nothing_lost(tap, calls)


async def test_a_killed_worker_s_calls_move_and_the_survivor_s_calls_stay(bootstrap, tmp_path):
    async def kill_b(workers, tap, calls):
        a, b, moved = await _b_joined(workers, tap, calls, tmp_path, bootstrap)
        # B commits every second: with finals out for 2.5 s more, its commit is past the calls'
        # call.started, so a has to open them from the transcript topic.
        await until(
            "for b's finals 2.5 s on", _new_finals(tap, moved, time.monotonic() + 2.5), 30, workers=workers
        )
        assignments_before = len(assigned_partitions(a))
        killed_at = b.signal(signal.SIGKILL)
        await b.proc.wait()
        before = {c: len(tap.calls[c].finals) for c in moved}
        await until(
            "for a to take b's partitions",
            lambda: (
                len(assigned_partitions(a)) > assignments_before
                and len(assigned_partitions(a)[-1]) == PARTITIONS
            ),
            JOIN_DEADLINE_S,
            workers=workers,
        )
        await until(
            "for a new final of each moved call",
            lambda: all(len(tap.calls[c].finals) > before[c] for c in moved),
            JOIN_DEADLINE_S,
            workers=workers,
        )
        first_new = max(tap.calls[c].finals[before[c]].at for c in moved) - killed_at
        print(f"kill -9 -> first new final of every moved call: {first_new:.1f} s")
        opened = sum(line["calls"] for line in a.logged("calls opened from the transcript topic"))
        return {"kept": _kept_by_a(a), "moved": moved, "opened": opened}

    tap, calls, seen = await _run(bootstrap, tmp_path, kill_b)

    assert seen["kept"] and seen["moved"], seen
    assert seen["opened"] == len(seen["moved"]), seen  # resumed past their call.started, not re-read
    _assert_said_once(tap, calls)  # the survivor's calls as the moved ones
    _assert_nothing_lost(tap, calls)


async def test_a_planned_stop_finishes_its_turns_and_the_next_owner_resumes_after_them(bootstrap, tmp_path):
    async def stop_b(workers, tap, calls):
        _, b, moved = await _b_joined(workers, tap, calls, tmp_path, bootstrap)
        b.signal(signal.SIGTERM)
        assert await b.wait(30) == 0, "worker b did not drain within its deadline"
        exited = time.monotonic()
        (stopped,) = b.logged("transcription worker stopped")
        return {"finished": stopped["legs_finished"], "moved": moved, "exited": exited}

    tap, calls, seen = await _run(bootstrap, tmp_path, stop_b)

    assert seen["finished"] == len(seen["moved"])  # one open leg per moved call, its turn finished
    for call_id in seen["moved"]:  # b's last final: its turn in flight, cut off the fake's 500 ms grid
        from_b = [
            a.final for a in tap.calls[call_id].finals if a.at <= seen["exited"] + 0.5
        ]  # the tap reads 0.1 s late at most
        assert from_b and from_b[-1].end_ms % 500, (call_id, [(f.start_ms, f.end_ms) for f in from_b])
    _assert_said_once(tap, calls)
    _assert_nothing_lost(tap, calls)


async def test_a_frozen_broker_is_one_line_when_it_stops_answering_and_one_when_it_is_back(tmp_path):
    freeze_s = 5.0

    async def freeze(workers, tap, calls):
        a = workers[0]
        broker.send_signal(signal.SIGSTOP)
        try:
            await until(
                "for a to say the broker is not answering",
                lambda: a.logged("broker not answering"),
                30,
                workers=workers,
            )
            await asyncio.sleep(freeze_s)
        finally:
            broker.send_signal(signal.SIGCONT)
        (back,) = await until(
            "for a to say the broker is back", lambda: a.logged("broker answering again"), 30, workers=workers
        )
        return {"outage_s": back["outage_s"]}

    with frozen_capable_broker() as (bootstrap, broker):
        tap, calls, seen = await _run(bootstrap, tmp_path, freeze)
        a_log = Worker("a", None, tmp_path / "a.log")  # type: ignore[arg-type]
        assert (
            len(a_log.logged("broker not answering")) == 1
            and len(a_log.logged("broker answering again")) == 1
        )
    assert seen["outage_s"] >= freeze_s  # the line gives the outage's length
    _assert_nothing_lost(tap, calls)


async def test_above_max_live_calls_new_calls_wait_and_then_go_through_with_nothing_lost(bootstrap, tmp_path):
    async def nothing(workers, tap, calls):
        return {}

    env = {"CALLSCOPE_TRANSCRIBE_MAX_LIVE_CALLS": "2"}
    tap, calls, _ = await _run(bootstrap, tmp_path, nothing, env=env)

    (a,) = [Worker("a", None, tmp_path / "a.log")]  # type: ignore[arg-type]
    held = a.logged("at max_live_calls: partition held at a new call")
    # Two calls at once: the other two partitions waited at least once each (more holds when a call
    # ends while another partition's call is still being opened: timing, not a loss).
    assert len(held) >= PARTITIONS - 2, held
    assert len(a.logged("partition takes new calls again")) == len(held)
    _assert_nothing_lost(tap, calls)
