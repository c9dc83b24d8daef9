"""Per-call state in the faust table survives a worker restart, on the real Tansu broker.

The first worker sees the first half of a call, stops (SIGTERM, or SIGKILL after it committed),
and a second worker with the same group finishes the call from the state it recovers from the
changelog and ignores the call's records delivered again after its end. With
CALLSCOPE_ANALYZE_ONE_RECORD_PER_BATCH (the default) every changelog batch holds one record, so
Tansu's wrong ListOffsets LATEST answer (the last batch's base offset + 1) is right.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from analyze.events import AgentHint, AssistEvent, ComplianceState, ConversationMetrics, parse_assist_event
from pipeline.kafka import create_topics
from pipeline.topics import TOPICS
from tests.analyze.test_worker import DEADLINE_S, _collect_until, _committed, _produce, _turn
from transcribe.events import TranscriptCallEnded, TranscriptCallStarted, TranscriptEvent, segment_id

PARTITIONS = 2

CALL = "call-restart"
NEXT_CALL = "call-after"
AGENT_FIRST = "thank you for calling this call may be recorded how can I help"
CUSTOMER_FIRST = "I want to cancel my account"
AGENT_LATER = "I am sorry to hear that"
CUSTOMER_LATER = "it has been a long week"


def _next_call() -> list[TranscriptEvent]:
    return [
        TranscriptCallStarted(call_id=NEXT_CALL, started_at=2_000.0),
        *_turn(NEXT_CALL, "agent", 0, AGENT_LATER.split()),
        TranscriptCallEnded(call_id=NEXT_CALL, ended_at=2_010.0),
    ]


def _both_calls_closed(seen: list[AssistEvent]) -> bool:
    """The second call closed too: the repeat of the first call's records before it has been read."""
    closed = {e.call_id for e in seen if isinstance(e, ConversationMetrics) and e.call_ended}
    return {CALL, NEXT_CALL} <= closed


def _halves() -> tuple[list[TranscriptEvent], list[TranscriptEvent]]:
    first: list[TranscriptEvent] = [
        TranscriptCallStarted(call_id=CALL, started_at=1_000.0),
        *_turn(CALL, "agent", 0, AGENT_FIRST.split()),
        *_turn(CALL, "customer", 6_000, CUSTOMER_FIRST.split()),
    ]
    rest: list[TranscriptEvent] = [
        *_turn(CALL, "agent", 10_000, AGENT_LATER.split()),
        *_turn(CALL, "customer", 14_000, CUSTOMER_LATER.split()),
        TranscriptCallEnded(call_id=CALL, ended_at=1_030.0),
    ]
    return first, rest


async def _start_worker(fresh_bootstrap: str, log_path: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "CALLSCOPE_KAFKA_BOOTSTRAP": fresh_bootstrap,
        "CALLSCOPE_PARTITIONS": str(PARTITIONS),
        "CALLSCOPE_ANALYZE_APP_ID": "callscope-analyze-restart",
        "CALLSCOPE_ANALYZE_STATE_STORE": "table",
        "CALLSCOPE_ANALYZE_EMBEDDINGS": "false",  # phrases are enough here; starts in a second
        "CALLSCOPE_ANALYZE_SESSION_TIMEOUT_S": "6",
        "CALLSCOPE_ANALYZE_COMMIT_INTERVAL_S": "0.5",
        "CALLSCOPE_ANALYZE_METRICS_ADDRESS": "127.0.0.1:0",  # two workers in a row, any free port
        "CALLSCOPE_LOG_LEVEL": "DEBUG",  # faust's rebalance and recovery lines too, for a failure's message
    }
    log_file = log_path.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deploy.cli", "analyze", env=env, stdout=log_file, stderr=log_file
        )
    finally:
        log_file.close()  # the child holds its own descriptor


def _log_digest(log_path: Path, *, since: float) -> str:
    """The JSON log lines written since `since`, one short line each: seconds, logger, message."""
    lines = []
    for raw in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            lines.append(raw[:200])
            continue
        if entry.get("ts", 0) >= since:
            lines.append(f"{entry['ts'] - since:7.2f} {entry.get('logger')}: {str(entry.get('msg'))[:400]}")
    return "\n".join(lines[-80:])


async def _collect_while_running(
    worker: asyncio.subprocess.Process,
    fresh_bootstrap: str,
    done: Callable[[list[AssistEvent]], bool],
    *,
    log_path: Path,
    since: float,
) -> list[AssistEvent]:
    """Assist events until `done`, then to the topic's end; a worker that exits first, or a
    deadline, fails with its log."""
    collect = _collect_until(fresh_bootstrap, TOPICS.assist, parse_assist_event, done, to_end=True)
    collecting = asyncio.ensure_future(collect)
    exited = asyncio.ensure_future(worker.wait())
    try:
        await asyncio.wait({collecting, exited}, return_when=asyncio.FIRST_COMPLETED)
        if collecting.done() and collecting.exception() is None:
            return collecting.result()
        if exited.done():
            failure = f"the second worker exited with {worker.returncode} before the calls were closed"
        else:
            failure = str(collecting.exception())
        raise AssertionError(f"{failure}; its log:\n{_log_digest(log_path, since=since)}")
    finally:
        collecting.cancel()
        exited.cancel()
        await asyncio.gather(collecting, exited, return_exceptions=True)


async def _wait_committed(fresh_bootstrap: str, partition: int, offset: int) -> None:
    """Committed means the worker flushed its producer first: assist events and changelog records."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while (await _committed(fresh_bootstrap, "callscope-analyze-restart")).get(partition) != offset:
        if loop.time() > deadline:
            raise AssertionError(f"offset {offset} of partition {partition} not committed in {DEADLINE_S} s")
        await asyncio.sleep(0.2)  # polling a condition with a deadline, not a fixed wait


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_call_goes_on_where_it_was_after_the_worker_restarts(
    fresh_bootstrap: str, tmp_path: Path, sig: signal.Signals
) -> None:
    await create_topics(fresh_bootstrap, PARTITIONS)
    first, rest = _halves()
    log_path = tmp_path / "workers.log"
    cancel_turn = segment_id(CALL, "customer", 6_000)

    worker = await _start_worker(fresh_bootstrap, log_path)
    try:
        ends = await _produce(fresh_bootstrap, [(0, CALL.encode(), e.to_bytes()) for e in first])
        await _collect_until(
            fresh_bootstrap,
            TOPICS.assist,
            parse_assist_event,
            lambda seen: any(isinstance(e, AgentHint) and e.segment_id == cancel_turn for e in seen),
        )
        await _wait_committed(fresh_bootstrap, 0, ends[0])
        worker.send_signal(sig)
        await asyncio.wait_for(worker.wait(), timeout=30)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    restarted_at = time.time()
    worker = await _start_worker(fresh_bootstrap, log_path)
    try:
        await _produce(fresh_bootstrap, [(0, CALL.encode(), e.to_bytes()) for e in rest])
        # The second half again, as a producer retry would deliver it, then another call on the
        # same partition: once that one is closed, the repeat has been read (and must be ignored).
        await _produce(fresh_bootstrap, [(0, CALL.encode(), e.to_bytes()) for e in rest])
        await _produce(fresh_bootstrap, [(0, NEXT_CALL.encode(), e.to_bytes()) for e in _next_call()])
        events: list[AssistEvent] = await _collect_while_running(
            worker, fresh_bootstrap, _both_calls_closed, log_path=log_path, since=restarted_at
        )
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), timeout=30)
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    log_text = log_path.read_text(errors="replace")
    events = [e for e in events if e.call_id == CALL]

    hints = [(e.rule_id, e.segment_id) for e in events if isinstance(e, AgentHint)]
    assert hints == [("retention-cancel", cancel_turn)], log_text[-3000:]  # the first worker's, once
    # Delivery is at least once (faust rewinds to the committed offset when the second worker's
    # recovery ends, and the second half is sent twice): records after the end are ignored.
    (closing,) = [e for e in events if isinstance(e, ComplianceState) and e.call_ended]
    assert {s.item_id: s.status for s in closing.steps}["recording-disclosure"] == "met"
    assert not [
        e for e in events if getattr(e, "rule_id", "") == "recording-disclosure" and e.type != "compliance"
    ]
    (metrics,) = [e for e in events if isinstance(e, ConversationMetrics) and e.call_ended]
    # Words and talk of both halves: the second worker's closing figures cover the whole call.
    assert metrics.agent.words == len(AGENT_FIRST.split()) + len(AGENT_LATER.split())
    assert metrics.customer.words == len(CUSTOMER_FIRST.split()) + len(CUSTOMER_LATER.split())
    assert metrics.elapsed_ms == 30_000
