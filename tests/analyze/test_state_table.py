"""CallStateTable's bookkeeping around the policy, with a dict in place of the faust table.

The faust table itself, its changelog and recovery on a real broker: test_analyze_state_recovery.
"""

from __future__ import annotations

from analyze.call_state import EndedMark, decode_state
from analyze.state_table import CallStateTable
from tests.analyze.test_call_state import CALL, _call, _policy, _run
from transcribe.events import FinalSegment, TranscriptCallEnded, TranscriptEvent

GRACE_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def _process(states: CallStateTable, events: list[TranscriptEvent], partition: int = 0) -> list[bytes]:
    """What analyze.app's agent does per record, minus Kafka."""
    out: list[bytes] = []
    for event in events:
        states.load(event, partition)
        if states._policy.has_ended(event.call_id):
            continue
        produced = states._policy.on_event(event)
        out.extend(e.to_bytes() for e in produced)
        states.save(event, produced, partition)
    return out


def test_a_worker_that_takes_over_mid_call_emits_what_one_worker_would() -> None:
    events = _call()
    expected = _run(_policy(), events)
    table: dict[bytes, bytes] = {}
    clock = Clock()
    # Cut where the state was just saved (after a final): a partial that fired nothing is not
    # saved (call_state.worth_saving), so a cut inside a turn may differ until the turn's final.
    cuts = [i + 1 for i, e in enumerate(events[:-1]) if isinstance(e, FinalSegment)]
    assert len(cuts) >= 4
    for cut in cuts:
        table.clear()
        first = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
        before = _process(first, events[:cut])
        second = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
        assert before + _process(second, events[cut:]) == expected, f"cut at {cut}"


def test_records_delivered_again_after_the_end_are_ignored_even_by_a_new_worker() -> None:
    events = _call()
    table: dict[bytes, bytes] = {}
    clock = Clock()
    first = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
    assert _process(first, events)
    assert EndedMark.decode(table[CALL.encode()]) == EndedMark(clock.now, 0)
    # The same worker after a rebalance rewound it, and a fresh worker after a restart.
    first.forget()
    assert _process(first, events[-5:]) == []
    second = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
    assert _process(second, events) == []


def test_end_marks_are_dropped_after_the_grace_period_on_their_own_partition_only() -> None:
    table: dict[bytes, bytes] = {}
    clock = Clock()
    states = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
    _process(states, [TranscriptCallEnded(call_id="p0", ended_at=1.0)], partition=0)
    _process(states, [TranscriptCallEnded(call_id="p1", ended_at=1.0)], partition=1)
    open_call = _call()[:3]
    _process(states, open_call, partition=0)
    clock.now += GRACE_S + 1
    _process(states, [TranscriptCallEnded(call_id="late", ended_at=1.0)], partition=0)
    assert set(table) == {b"p1", CALL.encode(), b"late"}  # p0's mark went; p1 waits for partition 1
    assert decode_state(table[CALL.encode()])["v"] == 1  # an open call's state is never expired
    # After a restart the marks are found in the table again and still expire.
    restarted = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
    clock.now += GRACE_S + 1
    _process(restarted, [TranscriptCallEnded(call_id="other", ended_at=1.0)], partition=1)
    assert set(table) == {CALL.encode(), b"late", b"other"}


def test_a_burst_of_expired_marks_is_dropped_a_few_per_record() -> None:
    table: dict[bytes, bytes] = {}
    clock = Clock()
    states = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
    _process(states, [TranscriptCallEnded(call_id=f"c{i}", ended_at=1.0) for i in range(20)])
    clock.now += GRACE_S + 1
    _process(states, [TranscriptCallEnded(call_id="next", ended_at=1.0)])
    assert len(table) == 20 + 1 - 8
    _process(states, [TranscriptCallEnded(call_id=f"n{i}", ended_at=1.0) for i in range(2)])
    assert set(table) == {b"next", b"n0", b"n1"}


def test_an_unreadable_end_mark_is_treated_as_expired() -> None:
    table: dict[bytes, bytes] = {b"broken": b'{"v": 1}'}
    clock = Clock()
    states = CallStateTable(table, _policy(), ended_grace_s=GRACE_S, clock=clock)
    _process(states, [TranscriptCallEnded(call_id="x", ended_at=1.0)])
    assert b"broken" not in table
