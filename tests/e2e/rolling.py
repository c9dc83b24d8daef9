"""A rolling restart of every stage while calls of real speech go on (the test and the benchmark).

Two transcription workers, the analysis and the store stage run as processes (tests/e2e/running.py);
calls are replayed live, two at a time (one per partition), round after round, while each stage
in turn gets SIGTERM, exits, is started again and rejoins its group. Then every call must be in
PostgreSQL once, with every final the transcript topic carries and every turn spoken.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.stages import STAGE_GROUPS
from ingest.replay import replay_call
from store.queries import CallSummary
from tests.calls import TestCall
from tests.e2e.failover import call_on_partition
from tests.e2e.running import PARTITIONS, Pipeline

ORDER = ("transcribe", "transcribe#2", "analyze", "store")  # the stages restarted, in turn
READY_S = 120.0


@dataclass
class Restart:
    name: str
    signalled_at: float  # wall time of the SIGTERM
    exit_code: int | None
    ready_at: float  # wall time the new process had its partitions again


@dataclass
class RollingRun:
    calls: dict[str, TestCall] = field(default_factory=dict)  # call id -> what it says
    restarts: list[Restart] = field(default_factory=list)


def _assignments(log_path: Path) -> int:
    """Non-empty `partitions assigned` lines of a transcription worker's JSON log so far."""
    count = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if '"partitions assigned"' in line:
            count += bool(json.loads(line).get("partitions"))
    return count


async def _members(bootstrap: str, group: str) -> set[str] | None:
    """The member ids of a Stable group; None while it is rebalancing (or cannot be described)."""
    from aiokafka.errors import KafkaError

    from pipeline.kafka import admin_client

    try:
        async with admin_client(bootstrap, client_id="callscope-rolling") as admin:
            responses = await admin.describe_consumer_groups([group])
    except (KafkaError, ValueError):
        return None
    for response in responses:
        for error_code, _, state, *_, members in response.groups:
            if error_code == 0 and state == "Stable":
                return {member[0] for member in members}
    return None


async def _ready(pipeline: Pipeline, name: str, before: int | set[str]) -> None:
    """The restarted stage has its partitions again: a transcription worker logs its assignment;
    for analyze and store, their group is Stable with members none of which is the old process's
    (Tansu keeps a group Stable for a while after a member left)."""
    if isinstance(before, int):
        stage = next(s for s in pipeline.stages.stages if s.name == name)

        async def assigned() -> bool:
            return _assignments(stage.log_path) > before

        await pipeline.wait_for(f"{name} to have partitions again", assigned, READY_S)
        return
    assert isinstance(before, set)

    async def rejoined() -> bool:
        members = await _members(pipeline.bootstrap, STAGE_GROUPS[name])
        return bool(members) and not members & before

    await pipeline.wait_for(f"{name} to rejoin its group", rejoined, READY_S)


async def rolling_restart(
    pipeline: Pipeline, calls: list[TestCall], *, prefix: str, first_restart_after_s: float = 0.0
) -> RollingRun:
    """Start the second transcription worker, replay rounds of `calls` live and restart every
    stage in ORDER meanwhile, the first `first_restart_after_s` after the first calls' first
    finals; returns once the last round's calls are replayed (not yet stored)."""
    run = RollingRun()
    second = await pipeline.stages.start_one("transcribe#2")

    async def second_assigned() -> bool:
        return _assignments(second.log_path) > 0

    await pipeline.wait_for("the second transcription worker to have a partition", second_assigned, READY_S)
    restarts_done = asyncio.Event()

    async def rounds() -> None:
        for r in range(10):  # bounded: the restarts take a few rounds at most
            ids = [call_on_partition(p, PARTITIONS, f"{prefix}-{r}") for p in range(PARTITIONS)]
            run.calls.update(zip(ids, calls, strict=True))
            await asyncio.gather(
                *(
                    replay_call(pipeline.bootstrap, call.replay(call_id), speed=1.0)
                    for call_id, call in zip(ids, calls, strict=True)
                )
            )
            if restarts_done.is_set():
                return
        raise AssertionError("the restarts did not end within 10 rounds of calls")

    replaying = asyncio.create_task(rounds(), name="rolling-calls")
    try:

        async def every_call_has_finals() -> bool:
            return len(run.calls) >= PARTITIONS and all(pipeline.tap.calls[c].finals for c in run.calls)

        await pipeline.wait_for("the first finals of the first calls", every_call_has_finals, READY_S)
        await asyncio.sleep(first_restart_after_s)
        for name in ORDER:
            stage = next(s for s in pipeline.stages.stages if s.name == name)
            if name.startswith("transcribe"):
                before: int | set[str] = _assignments(stage.log_path)
            else:
                before = await _members(pipeline.bootstrap, STAGE_GROUPS[name]) or set()
            signalled_at = time.time()
            await pipeline.stages.stop_one(name, sig=signal.SIGTERM)
            exit_code = stage.proc.returncode
            await pipeline.stages.start_one(name)
            await _ready(pipeline, name, before)
            run.restarts.append(Restart(name, signalled_at, exit_code, time.time()))
        restarts_done.set()
        await replaying
    finally:
        replaying.cancel()
    return run


def turns_lost(call: TestCall, summary: CallSummary) -> int:
    """Reference turns no stored segment overlaps."""
    return sum(
        not any(s.leg == t.leg and s.start_ms < t.end_ms and s.end_ms > t.start_ms for s in summary.segments)
        for t in call.turns
    )


def said_twice(summary: CallSummary) -> int:
    """Pairs of stored segments of one leg over the same audio (more than half the shorter one):
    a turn transcribed again under another id."""
    twice = 0
    for i, a in enumerate(summary.segments):
        for b in summary.segments[i + 1 :]:
            overlap = min(a.end_ms, b.end_ms) - max(a.start_ms, b.start_ms)
            shorter = min(a.end_ms - a.start_ms, b.end_ms - b.start_ms)
            twice += a.leg == b.leg and shorter > 0 and overlap > shorter / 2
    return twice


def delays(pipeline: Pipeline, run: RollingRun, summaries: dict[str, CallSummary]) -> dict[str, float]:
    """Final latency (end of speech -> emitted, and -> stored in PostgreSQL) of the turns that ended
    before the first restart and of those that ended while the stages restarted (to 5 s after)."""
    first = run.restarts[0].signalled_at
    last = run.restarts[-1].ready_at + 5.0
    windows: dict[str, dict[str, list[float]]] = {
        w: {"emitted": [], "stored": []} for w in ("before", "during")
    }
    for call_id, summary in summaries.items():
        finals = pipeline.tap.calls[call_id].finals  # the first emission of each id
        for segment in summary.segments:
            final = finals.get(segment.segment_id)
            if final is None or final.times.speech_ended_at is None or segment.stored_at is None:
                continue
            ended = final.times.speech_ended_at
            window = "before" if ended < first else "during" if ended <= last else None
            if window:
                windows[window]["emitted"].append(final.times.emitted_at - ended)
                windows[window]["stored"].append(segment.stored_at.timestamp() - ended)
    out: dict[str, float] = {}
    for window, kinds in windows.items():
        for kind, values in kinds.items():
            if values:
                out[f"{window}_{kind}_p50_s"] = round(statistics.median(values), 2)
                out[f"{window}_{kind}_max_s"] = round(max(values), 2)
            out[f"{window}_finals"] = len(kinds["emitted"])
    if "before_stored_p50_s" in out and "during_stored_max_s" in out:
        out["extra_delay_max_s"] = round(out["during_stored_max_s"] - out["before_stored_p50_s"], 2)
    for restart in run.restarts:
        out[f"restart_{restart.name.replace('#', '')}_s"] = round(restart.ready_at - restart.signalled_at, 1)
    return out
