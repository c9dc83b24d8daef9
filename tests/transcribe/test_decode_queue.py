"""Which decode requests the scheduler runs next: finals first, latest partial wins, one per session."""

from __future__ import annotations

from transcribe.decode_queue import DecodeQueue, DecodeRequest


def _req(session: str, kind: str, payload: str) -> DecodeRequest[str]:
    return DecodeRequest(session, kind, payload)  # type: ignore[arg-type]


def _payloads(batch: list[DecodeRequest[str]]) -> list[str]:
    return [r.payload for r in batch]


def test_finals_of_all_sessions_go_before_any_partial():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "partial", "a-p1"))
    queue.submit(_req("b", "final", "b-f1"))
    queue.submit(_req("c", "partial", "c-p1"))
    queue.submit(_req("d", "final", "d-f1"))
    assert _payloads(queue.take(8)) == ["b-f1", "d-f1", "a-p1", "c-p1"]


def test_a_newer_partial_replaces_the_waiting_one_and_keeps_its_place_in_line():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "partial", "a-p1"))
    queue.submit(_req("b", "partial", "b-p1"))
    superseded = queue.submit(_req("a", "partial", "a-p2"))
    assert _payloads(superseded) == ["a-p1"]
    assert len(queue) == 2
    assert _payloads(queue.take(1)) == ["a-p2"]  # a has waited longest, and gets its newest audio


def test_a_final_supersedes_the_waiting_partial_of_its_session_only():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "partial", "a-p1"))
    queue.submit(_req("b", "partial", "b-p1"))
    assert _payloads(queue.submit(_req("a", "final", "a-f1"))) == ["a-p1"]
    assert _payloads(queue.take(8)) == ["a-f1", "b-p1"]


def test_every_final_is_kept_in_order_one_per_batch_per_session():
    queue: DecodeQueue[str] = DecodeQueue()
    for payload in ("a-f1", "a-f2", "a-f3"):
        assert queue.submit(_req("a", "final", payload)) == []
    taken = []
    for _ in range(3):
        batch = queue.take(8)
        assert len(batch) == 1
        taken += _payloads(batch)
        queue.done(["a"])
    assert taken == ["a-f1", "a-f2", "a-f3"]
    assert len(queue) == 0


def test_a_session_with_a_decode_running_waits_for_it_to_finish():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "final", "a-f1"))
    assert _payloads(queue.take(8)) == ["a-f1"]
    queue.submit(_req("a", "partial", "a-p1"))
    assert not queue.ready()
    assert queue.take(8) == []
    queue.done(["a"])
    assert queue.ready()
    assert _payloads(queue.take(8)) == ["a-p1"]


def test_a_partial_of_the_next_turn_waits_behind_its_sessions_final():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "final", "a-f1"))
    queue.submit(_req("a", "partial", "a-p2"))  # next turn's partial, submitted after the final
    assert _payloads(queue.take(8)) == ["a-f1"]
    queue.done(["a"])
    assert _payloads(queue.take(8)) == ["a-p2"]


def test_a_batch_holds_at_most_max_items_oldest_first():
    queue: DecodeQueue[str] = DecodeQueue()
    for session in "abcdef":
        queue.submit(_req(session, "partial", f"{session}-p1"))
    assert _payloads(queue.take(4)) == ["a-p1", "b-p1", "c-p1", "d-p1"]
    assert _payloads(queue.take(4)) == ["e-p1", "f-p1"]
    assert queue.take(4) == []


def test_forgetting_a_session_drops_what_it_has_waiting():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "final", "a-f1"))
    queue.submit(_req("a", "partial", "a-p2"))
    queue.submit(_req("b", "partial", "b-p1"))
    assert sorted(_payloads(queue.forget("a"))) == ["a-f1", "a-p2"]
    assert _payloads(queue.take(8)) == ["b-p1"]
    assert sorted(_payloads(queue.forget_all())) == []


def test_a_turns_first_partial_goes_before_older_partials_but_after_finals():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "partial", "a-p3"))  # a turn that already shows text: a revision
    queue.submit(DecodeRequest("b", "partial", "b-p1", urgent=True))  # a turn with no text yet
    queue.submit(_req("c", "final", "c-f1"))
    assert _payloads(queue.take(8)) == ["c-f1", "b-p1", "a-p3"]


def test_urgent_only_takes_finals_and_urgent_partials():
    queue: DecodeQueue[str] = DecodeQueue()
    queue.submit(_req("a", "partial", "a-p3"))
    assert not queue.ready(urgent_only=True)
    queue.submit(DecodeRequest("b", "partial", "b-p1", urgent=True))
    queue.submit(_req("c", "final", "c-f1"))
    assert _payloads(queue.take(8, urgent_only=True)) == ["c-f1", "b-p1"]
    assert _payloads(queue.take(8)) == ["a-p3"]
