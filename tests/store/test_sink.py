"""Pure batch logic of the store: which events become rows, and how a batch is deduplicated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import exc as sa_exc

from pipeline.contract import InvalidEvent
from pipeline.retry import RetryPolicy
from store.batch import merge
from store.errors import is_permanent
from store.rows import AssistRow, CallEndRow, CallStartRow, SegmentRow, SentimentRow
from store.sink import row_of
from tests import store_events as ev
from transcribe.events import parse_transcript_event


def test_partials_and_partial_sentiment_are_not_stored() -> None:
    p = ev.partial("c1", "customer", 0, "I want to")
    assert row_of(p) is None
    assert row_of(ev.sentiment(p, -0.4, is_final=False)) is None


def test_final_segment_row_has_utc_timestamps_from_epoch_seconds() -> None:
    row = row_of(ev.final("c1", "agent", 2000, "how can I help", end_ms=3500))
    assert isinstance(row, SegmentRow)
    assert row.start_ms == 2000 and row.end_ms == 3500 and row.leg == "agent"
    assert row.emitted_at == datetime.fromtimestamp(ev.T0 + 3.5 + 0.2, tz=UTC)
    assert row.speech_ended_at is not None and row.speech_ended_at.tzinfo is UTC


def test_call_lifecycle_rows_carry_start_and_end_fields() -> None:
    start = row_of(ev.started("c1"))
    end = row_of(ev.ended("c1", reason="transfer"))
    assert (
        isinstance(start, CallStartRow)
        and start.agent_id == "agent-7"
        and start.metadata == {"ani_region": "EU"}
    )
    assert isinstance(end, CallEndRow) and end.end_reason == "transfer"


def test_final_sentiment_becomes_a_sentiment_row_for_its_segment() -> None:
    seg = ev.final("c1", "customer", 0, "this is terrible")
    row = row_of(ev.sentiment(seg, -0.7))
    assert isinstance(row, SentimentRow)
    assert row.segment_id == seg.segment_id and row.sentiment_compound == -0.7


def test_hint_and_alert_rows_carry_kind_and_payload() -> None:
    seg = ev.final("c1", "customer", 0, "I will cancel")
    hint = row_of(ev.hint(seg, "retention", "Offer the loyalty discount"))
    alert = row_of(ev.alert(seg, "escalation", "Customer asks for a supervisor"))
    assert isinstance(hint, AssistRow) and (hint.kind, hint.payload, hint.severity) == (
        "hint",
        "Offer the loyalty discount",
        None,
    )
    assert isinstance(alert, AssistRow) and (alert.kind, alert.severity) == ("alert", "critical")


def test_replayed_final_in_one_batch_is_one_row_and_latest_wins() -> None:
    first = ev.final("c1", "customer", 0, "I want to cancel")
    replay = ev.final("c1", "customer", 0, "I want to cancel my plan")
    batch = merge([row_of(first), row_of(replay)])  # type: ignore[list-item]
    assert [s.text for s in batch.segments] == ["I want to cancel my plan"]


def test_first_firing_of_an_assist_event_wins_within_a_batch() -> None:
    p = ev.partial("c1", "customer", 0, "cancel")
    f = ev.final("c1", "customer", 0, "cancel my plan")
    on_partial = ev.hint(p, "retention", "Offer discount", on_final=False)
    on_final = ev.hint(f, "retention", "Offer discount", on_final=True)
    assert on_partial.event_id == on_final.event_id
    batch = merge([row_of(on_partial), row_of(on_final)])  # type: ignore[list-item]
    assert [(a.event_id, a.on_final) for a in batch.assist_events] == [(on_partial.event_id, False)]


def test_call_start_and_end_in_one_batch_are_both_kept() -> None:
    batch = merge([row_of(ev.ended("c1")), row_of(ev.started("c1")), row_of(ev.started("c2"))])  # type: ignore[list-item]
    assert [c.call_id for c in batch.call_starts] == ["c1", "c2"]
    assert [c.call_id for c in batch.call_ends] == ["c1"]
    assert batch.row_count() == 3


def test_rows_are_in_key_order_so_concurrent_writers_lock_alike() -> None:
    segs = [ev.final("c1", "agent", ms, "x") for ms in (3000, 0, 1000, 2000)]
    batch = merge(row_of(s) for s in segs)  # type: ignore[misc]
    ids = [s.segment_id for s in batch.segments]
    assert ids == sorted(ids)


def test_nul_characters_are_removed_because_postgres_text_cannot_hold_them() -> None:
    row = row_of(ev.final("c1", "agent", 0, "hel\x00lo"))
    assert isinstance(row, SegmentRow) and row.text == "hello"


@pytest.mark.parametrize("at", [float("inf"), 1e20, -1e20])
def test_timestamp_out_of_range_is_an_invalid_event(at: float) -> None:
    with pytest.raises(InvalidEvent) as info:
        row_of(ev.ended("c1", at=at))
    assert info.value.reason == "timestamp_out_of_range"


def test_overlong_call_id_is_an_invalid_event() -> None:
    raw = ev.started("c" * 5000).to_bytes()
    with pytest.raises(InvalidEvent) as info:
        row_of(parse_transcript_event(raw))
    assert info.value.reason == "id_too_long"


def test_retry_delay_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay_s(10_000) == 4.0


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (sa_exc.IntegrityError("INSERT", {}, _PgError("23505")), True),
        (sa_exc.DBAPIError("INSERT", {}, _PgError("22021")), True),
        (sa_exc.DBAPIError("INSERT", {}, _PgError("54000")), True),
        (sa_exc.OperationalError("INSERT", {}, _PgError("57P01")), False),  # admin shutdown
        (sa_exc.DBAPIError("INSERT", {}, _PgError("40P01")), False),  # deadlock: retry
        (sa_exc.ProgrammingError("INSERT", {}, _PgError("42P01")), False),  # table missing: never drop
        (ConnectionRefusedError(), False),
    ],
)
def test_only_errors_about_the_rows_themselves_are_permanent(error: BaseException, permanent: bool) -> None:
    assert is_permanent(error) is permanent
