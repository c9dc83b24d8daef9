"""PII redaction of transcript text. Pure: text in, redacted text and the kinds redacted out.

Kinds: payment card numbers (13-19 digits that pass the Luhn check, written as numerals or
spoken as digit words: "four one one one ..."), US social security numbers, phone numbers,
e-mail addresses (also spoken: "jane dot doe at example dot com") and dates of birth (a date
after "date of birth", "born on", "birthday", "DOB"). Each is replaced by a placeholder such as
`[CARD]`; the result records how many of each kind were removed, never the values.

Digit runs are tokens (numeral groups or digit words) joined by spaces or hyphens; commas and
periods join only single digits and digit words (spoken digits are transcribed "4, 1, 1, 1"),
so a list of amounts ("1200, 3400, 5600") never fuses into one long number that could pass Luhn
by chance. Ordinary numbers (amounts, counts, times, years, order numbers of up to 8 digits)
are left alone.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

PiiKind = Literal["card", "ssn", "phone", "email", "dob"]
PLACEHOLDERS: dict[PiiKind, str] = {
    "card": "[CARD]",
    "ssn": "[SSN]",
    "phone": "[PHONE]",
    "email": "[EMAIL]",
    "dob": "[DOB]",
}

DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_REPEAT_WORDS = {"double": 2, "triple": 3}
_TOKEN = re.compile(r"\d+|\b(?:" + "|".join([*DIGIT_WORDS, *_REPEAT_WORDS]) + r")\b", re.IGNORECASE)
_LOOSE_SEP = re.compile(r"\s*[,.]?\s+|\s*-\s*|\s*,\s*")  # between single digits / digit words
_TIGHT_SEP = re.compile(r"\s+|\s*-\s*")  # between numeral groups

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_TLD = r"(?:com|net|org|edu|gov|io|co|uk|us|ca|info|biz)"
_SPOKEN_EMAIL = re.compile(
    rf"\b[a-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9]+)*\s+at\s+[a-z0-9]+(?:\s+dot\s+[a-z0-9]+)*"
    rf"\s+dot\s+{_TLD}\b",
    re.IGNORECASE,
)
_PHONE_FORMATTED = re.compile(
    r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[.-])\d{3}[.-]\d{4}(?!\d)|(?<!\d)\(\d{3}\)\s*\d{3}\s\d{4}"
)
_SSN_FORMATTED = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_SSN_CONTEXT = re.compile(r"\b(?:social(?:\s+security)?|ssn|s\s*s\s*n)\b", re.IGNORECASE)
_DOB_CONTEXT = re.compile(
    r"\b(?:date\s+of\s+birth|born\s+(?:on|in)|birth\s*day\s+is|d\s*o\s*b)\b", re.IGNORECASE
)

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_SMALL = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
_SMALL += r"sixteen|seventeen|eighteen|nineteen|twenty|thirty)\b"
_ORDINAL = (
    r"(?:\d{1,2}(?:st|nd|rd|th)?|(?:twenty|thirty)?[\s-]?(?:first|second|third|fourth|fifth|sixth|"
    r"seventh|eighth|ninth)|tenth|eleventh|twelfth|(?:thir|four|fif|six|seven|eigh|nine)teenth|"
    r"twentieth|thirtieth|" + _SMALL + r")\b"
)
_YEAR = (
    r"(?:\d{4}|'?\d{2}\b|(?:nineteen|twenty|two\s+thousand)(?:[\s-]+(?:and\s+)?(?:" + _SMALL + r"|"
    r"forty|fifty|sixty|seventy|eighty|ninety|oh)\b)*)"
)
_DATE = re.compile(
    r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"
    rf"|{_MONTH}\.?\s+(?:the\s+)?{_ORDINAL}(?:,?\s+{_YEAR})?"
    rf"|(?:the\s+)?{_ORDINAL}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?",
    re.IGNORECASE,
)
_DOB_WINDOW_CHARS = 40  # how far after the context words the date may start


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str
    counts: dict[str, int]  # kind -> how many were redacted; empty when nothing was

    @property
    def redacted(self) -> bool:
        return bool(self.counts)


@dataclass(frozen=True, slots=True)
class _Token:
    start: int
    end: int
    digits: str
    numeral: bool  # written as digits (vs a spoken digit word)
    filler: bool = False  # "oh": also an interjection, so a card span never starts with it


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (payment card numbers do)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact(text: str) -> Redaction:
    """Replace every PII span with its placeholder; counts say which kinds were removed."""
    counts: Counter[str] = Counter()
    spans: list[tuple[int, int, PiiKind]] = []

    def take(start: int, end: int, kind: PiiKind) -> None:
        if all(end <= s or start >= e for s, e, _ in spans):
            spans.append((start, end, kind))

    for pattern in (_EMAIL, _SPOKEN_EMAIL):
        for m in pattern.finditer(text):
            take(m.start(), m.end(), "email")
    for ctx in _DOB_CONTEXT.finditer(text):
        m = _DATE.search(text, ctx.end(), ctx.end() + _DOB_WINDOW_CHARS + 60)
        if m and m.start() - ctx.end() <= _DOB_WINDOW_CHARS:
            take(m.start(), m.end(), "dob")
    for m in _SSN_FORMATTED.finditer(text):
        take(m.start(), m.end(), "ssn")
    for m in _PHONE_FORMATTED.finditer(text):
        take(m.start(), m.end(), "phone")
    for run in _digit_runs(text):
        for start, end, kind in _classify_run(text, run):
            take(start, end, kind)

    if not spans:
        return Redaction(text=text, counts={})
    out: list[str] = []
    cursor = 0
    for start, end, kind in sorted(spans):
        out.append(text[cursor:start])
        out.append(PLACEHOLDERS[kind])
        counts[kind] += 1
        cursor = end
    out.append(text[cursor:])
    return Redaction(text="".join(out), counts=dict(sorted(counts.items())))


def _digit_runs(text: str) -> list[list[_Token]]:
    runs: list[list[_Token]] = []
    current: list[_Token] = []
    pending_repeat = 1
    for m in _TOKEN.finditer(text):
        word = m.group().lower()
        if word in _REPEAT_WORDS:
            repeat_start = m.start()
            if current and not _joins(text, current[-1], m.start(), loose=True):
                runs.append(current)
                current = []
            pending_repeat = _REPEAT_WORDS[word]
            continue
        numeral = word.isdigit()
        digits = word if numeral else DIGIT_WORDS[word]
        start = m.start()
        if pending_repeat > 1 and len(digits) == 1:
            digits, start = digits * pending_repeat, repeat_start
        pending_repeat = 1
        token = _Token(start, m.end(), digits, numeral, filler=word == "oh")
        if current and not _joins(text, current[-1], token.start, loose=_loose(current[-1], token)):
            runs.append(current)
            current = []
        current.append(token)
    if current:
        runs.append(current)
    return runs


def _loose(left: _Token, right: _Token) -> bool:
    return len(left.digits) == 1 and len(right.digits) == 1 or not (left.numeral and right.numeral)


def _joins(text: str, left: _Token, next_start: int, *, loose: bool) -> bool:
    gap = text[left.end : next_start]
    if gap == "":
        return False  # "4th", "1a": not two tokens of one number
    return bool((_LOOSE_SEP if loose else _TIGHT_SEP).fullmatch(gap))


def _classify_run(text: str, run: list[_Token]) -> list[tuple[int, int, PiiKind]]:
    digits = "".join(t.digits for t in run)
    if len(digits) < 7:
        return []
    cards = _card_spans(run)
    if cards:
        return cards
    start, end = run[0].start, run[-1].end
    groups = [len(t.digits) for t in run]
    before = text[max(0, start - 60) : start]
    if len(digits) == 9 and (groups == [3, 2, 4] or _SSN_CONTEXT.search(before)):
        return [(start, end, "ssn")]
    if len(digits) == 10 or (len(digits) == 11 and digits[0] == "1"):
        return [(start, end, "phone")]
    if len(digits) == 7 and (groups == [3, 4] or not run[0].numeral):
        return [(start, end, "phone")]
    return []


def _card_spans(run: list[_Token]) -> list[tuple[int, int, PiiKind]]:
    """Longest token-aligned sub-runs of 13-19 digits passing Luhn, without overlap."""
    found: list[tuple[int, int]] = []
    n = len(run)
    candidates: list[tuple[int, int, int]] = []
    for i in range(n):
        if run[i].filler:
            continue  # a leading zero never changes the Luhn sum: "Oh, 4111 ..." keeps its "Oh"
        length = 0
        for j in range(i, n):
            length += len(run[j].digits)
            if length > 19:
                break
            if length >= 13 and luhn_valid("".join(t.digits for t in run[i : j + 1])):
                candidates.append((length, i, j))
    for _, i, j in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if all(j < a or i > b for a, b in found):
            found.append((i, j))
    return [(run[i].start, run[j].end, "card") for i, j in sorted(found)]
