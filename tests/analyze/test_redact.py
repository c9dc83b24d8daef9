"""PII redaction: examples per kind, and properties over generated card numbers and ordinary numbers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyze.redact import DIGIT_WORDS, luhn_valid, redact

SPOKEN = {v: k for k, v in DIGIT_WORDS.items() if k != "oh"}
FILLER_WORDS = ["my", "card", "number", "is", "the", "and", "thanks", "ok", "so", "it's", "oh", "one", "um"]


def _with_check_digit(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    return _with_check_digit(draw(st.sampled_from("3456")) + body[1:])


def _spoken(digits: str, sep: str) -> str:
    return sep.join(SPOKEN[d] for d in digits)


def _grouped(digits: str, sep: str, size: int) -> str:
    return sep.join(digits[i : i + size] for i in range(0, len(digits), size))


def _digits_of(text: str) -> str:
    """Every digit the text still says, numerals and digit words alike."""
    words = re.findall(r"\d|[a-z]+", text.lower())
    return "".join(w if w.isdigit() else DIGIT_WORDS.get(w, "") for w in words if w != "oh")


@pytest.mark.parametrize(
    "text,kind",
    [
        ("my card is 4111 1111 1111 1111 thanks", "card"),
        ("it's 4111-1111-1111-1111", "card"),
        ("four one one one one one one one one one one one one one one one", "card"),
        ("four, one, one, one, one, one, one, one, one, one, one, one, one, one, one, one", "card"),
        ("5500 0000 0000 0004 expiring soon", "card"),
        ("my social is 123-45-6789", "ssn"),
        ("social security number one two three four five six seven eight nine", "ssn"),
        ("call me back at (555) 123-4567", "phone"),
        ("my number is five five five one two three four five six seven", "phone"),
        ("it's 555.123.4567", "phone"),
        ("send it to jane.doe@example.com please", "email"),
        ("it's jane dot doe at example dot com", "email"),
        ("my date of birth is March 3rd, 1985", "dob"),
        ("I was born on the fifth of june nineteen eighty five", "dob"),
        ("DOB 03/04/1985", "dob"),
    ],
)
def test_each_kind_of_pii_is_replaced_by_its_placeholder_and_counted(text: str, kind: str) -> None:
    result = redact(text)
    assert result.counts == {kind: 1}
    assert f"[{kind.upper()}]" in result.text


def test_a_number_failing_luhn_is_not_taken_for_a_card() -> None:
    assert redact("reference 4111 1111 1111 1112").counts == {}


def test_the_audit_counts_kinds_and_never_holds_a_value() -> None:
    result = redact("card 4111111111111111, call 555-123-4567, mail a@b.co")
    assert result.counts == {"card": 1, "email": 1, "phone": 1}
    assert all(not re.search(r"\d", k) for k in result.counts)
    assert "4111" not in result.text and "555" not in result.text


def test_an_interjection_before_a_card_survives() -> None:
    assert redact("Oh, 4111-1111-1111-1111.").text == "Oh, [CARD]."


@pytest.mark.parametrize(
    "text",
    [
        "I have been on hold for forty five minutes",
        "I paid 1200, 3400, 5600, 7800 dollars",
        "order 12345678 placed at 10:30 on 12/05 for $12.50",
        "this is the third time I've called since 2019",
        "one two three, I counted to three",
        "room 101 on floor 4, extension 2231",
    ],
)
def test_ordinary_numbers_and_number_words_are_left_alone(text: str) -> None:
    assert redact(text).text == text


@settings(max_examples=300, deadline=None)
@given(
    card=card_numbers(),
    style=st.sampled_from(["plain", "space4", "dash4", "spoken", "spoken_comma"]),
    before=st.lists(st.sampled_from(FILLER_WORDS), max_size=4),
    after=st.lists(st.sampled_from(FILLER_WORDS), max_size=4),
)
def test_no_luhn_valid_card_number_survives(
    card: str, style: str, before: list[str], after: list[str]
) -> None:
    written = {
        "plain": card,
        "space4": _grouped(card, " ", 4),
        "dash4": _grouped(card, "-", 4),
        "spoken": _spoken(card, " "),
        "spoken_comma": _spoken(card, ", "),
    }[style]
    result = redact(" ".join([*before, written, *after]))
    assert result.counts.get("card") == 1
    assert card not in _digits_of(result.text)


ordinary_numbers = st.one_of(
    st.integers(min_value=0, max_value=99_999_999).map(str),
    st.integers(min_value=1_000, max_value=9_999_999).map(lambda n: f"{n:,}"),
    st.tuples(st.integers(0, 9999), st.integers(0, 99)).map(lambda t: f"${t[0]}.{t[1]:02d}"),
    st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda t: f"{t[0]}:{t[1]:02d}"),
    st.integers(min_value=0, max_value=100).map(lambda n: f"{n}%"),
)
WORDS = ["i", "paid", "waited", "minutes", "for", "order", "items", "on", "hold", "at", "was", "about", "the"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(ordinary_numbers, st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)), max_size=6
    )
)
def test_no_ordinary_number_is_eaten(parts: list[tuple[str, list[str]]]) -> None:
    text = " ".join(f"{number} {' '.join(words)}" for number, words in parts)
    assert redact(text).text == text
