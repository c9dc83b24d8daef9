"""Query parameters: typed, bounded, strict, and never echoed back."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from console.history import snippet_parts
from console.params import BadRequest, HistoryFilter, LiveFilter, SearchQuery, call_id_ok, parse_query


def parse(model, query: str):
    return parse_query(model, QueryParams(query), query.encode())


def test_valid_parameters_become_typed_values():
    f = parse(HistoryFilter, "from=2026-01-01T00:00:00Z&sentiment_below=-0.2&compliance_missed=true&limit=10")
    assert (f.from_.year, f.sentiment_below, f.compliance_missed, f.limit) == (2026, -0.2, True, 10)
    assert parse(LiveFilter, "has_alert=false&sort=severity").has_alert is False
    assert parse(SearchQuery, "q=  refund  ").q == "refund"


def test_empty_values_are_absent():
    assert parse(HistoryFilter, "agent=&queue=").agent is None


@pytest.mark.parametrize(
    "query",
    [
        "sort=random",
        "limit=0",
        "offset=-1",
        "sentiment_below=nan",
        "x=1",
        "rule=DROP%20TABLE",
        "limit=1&limit=2",
    ],
)
def test_bad_parameters_are_refused_without_their_values(query: str):
    with pytest.raises(BadRequest) as exc:
        parse(HistoryFilter if "sort" not in query else LiveFilter, query)
    text = str(exc.value.problems)
    assert "DROP" not in text and "random" not in text


def test_call_ids_are_short_and_plain():
    assert call_id_ok("CA7f3a91-b.x:1@y")
    assert (
        not call_id_ok("") and not call_id_ok("a b") and not call_id_ok("x" * 129) and not call_id_ok("a/b")
    )


def test_a_headline_becomes_text_parts_with_hits_marked():
    assert snippet_parts("I was \x02charged\x03 twice, \x02charged\x03") == [
        {"text": "I was ", "hit": False},
        {"text": "charged", "hit": True},
        {"text": " twice, ", "hit": False},
        {"text": "charged", "hit": True},
    ]
