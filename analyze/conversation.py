"""Live conversation metrics from segment timings, per leg and per call. Pure.

A segment's span [start_ms, end_ms] is where its leg was talking (both legs share the call's
clock: position 0 is the start of the call). A turn's partials stretch its span and its final
replaces it, latest wins. From the spans:

- talk time per leg (union of its spans) and for the call (either leg talking);
- non-talk time: the call so far minus talk time (per leg: minus that leg's talk);
- longest silence: the longest stretch where neither leg talks, from the call's start to now;
- overtalk: time where both legs talk at once;
- interruptions: a leg starts a turn while the other is talking, and the two overlap by at
  least `min_interruption_overlap_ms` (a short "mm-hm" over the other is not one);
- speaking rate: words per minute of the leg's own talk time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ingest.events import Leg

LEGS: tuple[Leg, Leg] = ("agent", "customer")
DEFAULT_MIN_INTERRUPTION_OVERLAP_MS = 500
DEFAULT_MAX_TURNS = 4_000


@dataclass(frozen=True, slots=True)
class LegFigures:
    talk_ms: int
    non_talk_ms: int
    words: int
    words_per_minute: float | None  # None before the leg has talked
    interruptions: int  # turns of this leg that started over the other leg
    longest_turn_ms: int


@dataclass(frozen=True, slots=True)
class CallFigures:
    elapsed_ms: int
    talk_ms: int
    non_talk_ms: int
    longest_silence_ms: int
    overtalk_ms: int
    interruptions: int
    agent: LegFigures
    customer: LegFigures


@dataclass(frozen=True, slots=True)
class _Turn:
    leg: Leg
    start_ms: int
    end_ms: int
    words: int
    final: bool


Span = tuple[int, int]


def union(spans: list[Span]) -> list[Span]:
    """Sorted, merged spans."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersection(a: list[Span], b: list[Span]) -> list[Span]:
    """Overlap of two merged span lists."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def total(spans: list[Span]) -> int:
    return sum(end - start for start, end in spans)


class ConversationTracker:
    """Turn spans of one call; `figures()` computes every metric from them (O(turns))."""

    def __init__(
        self,
        *,
        min_interruption_overlap_ms: int = DEFAULT_MIN_INTERRUPTION_OVERLAP_MS,
        max_turns: int = DEFAULT_MAX_TURNS,
    ) -> None:
        self._min_overlap_ms = min_interruption_overlap_ms
        self._max_turns = max_turns
        self._turns: OrderedDict[str, _Turn] = OrderedDict()
        self._elapsed_ms = 0

    @property
    def elapsed_ms(self) -> int:
        return self._elapsed_ms

    def observe(
        self, leg: Leg, segment_id: str, start_ms: int, end_ms: int, words: int, *, final: bool
    ) -> None:
        known = self._turns.get(segment_id)
        if known is not None and known.final and not final:
            return  # a late partial after its final
        self._turns[segment_id] = _Turn(leg, start_ms, max(start_ms, end_ms), words, final)
        self._elapsed_ms = max(self._elapsed_ms, end_ms)
        while len(self._turns) > self._max_turns:
            self._turns.popitem(last=False)

    def extend_to(self, elapsed_ms: int) -> None:
        self._elapsed_ms = max(self._elapsed_ms, elapsed_ms)

    def to_dict(self) -> dict[str, object]:
        """Turns as `[segment_id, leg, start_ms, end_ms, words, final]`, oldest first."""
        return {
            "elapsed_ms": self._elapsed_ms,
            "turns": [[k, t.leg, t.start_ms, t.end_ms, t.words, t.final] for k, t in self._turns.items()],
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        min_interruption_overlap_ms: int = DEFAULT_MIN_INTERRUPTION_OVERLAP_MS,
        max_turns: int = DEFAULT_MAX_TURNS,
    ) -> ConversationTracker:
        tracker = cls(min_interruption_overlap_ms=min_interruption_overlap_ms, max_turns=max_turns)
        for key, leg, start_ms, end_ms, words, final in data["turns"][-max_turns:]:
            tracker._turns[key] = _Turn(leg, int(start_ms), int(end_ms), int(words), bool(final))
        tracker._elapsed_ms = int(data["elapsed_ms"])
        return tracker

    def figures(self) -> CallFigures:
        elapsed = self._elapsed_ms
        spans = {
            leg: union([(t.start_ms, t.end_ms) for t in self._turns.values() if t.leg == leg]) for leg in LEGS
        }
        both = union(spans["agent"] + spans["customer"])
        interruptions = {leg: self._interruptions(leg, spans) for leg in LEGS}
        legs = {leg: self._leg(leg, spans[leg], elapsed, interruptions[leg]) for leg in LEGS}
        talk = total(both)
        return CallFigures(
            elapsed_ms=elapsed,
            talk_ms=talk,
            non_talk_ms=max(0, elapsed - talk),
            longest_silence_ms=_longest_gap(both, elapsed),
            overtalk_ms=total(intersection(spans["agent"], spans["customer"])),
            interruptions=sum(interruptions.values()),
            agent=legs["agent"],
            customer=legs["customer"],
        )

    def _leg(self, leg: Leg, spans: list[Span], elapsed: int, interruptions: int) -> LegFigures:
        turns = [t for t in self._turns.values() if t.leg == leg]
        talk = total(spans)
        words = sum(t.words for t in turns)
        return LegFigures(
            talk_ms=talk,
            non_talk_ms=max(0, elapsed - talk),
            words=words,
            words_per_minute=round(words * 60_000 / talk, 1) if talk > 0 else None,
            interruptions=interruptions,
            longest_turn_ms=max((t.end_ms - t.start_ms for t in turns), default=0),
        )

    def _interruptions(self, leg: Leg, spans: dict[Leg, list[Span]]) -> int:
        other = spans["customer" if leg == "agent" else "agent"]
        count = 0
        for turn in self._turns.values():
            if turn.leg != leg:
                continue
            for start, end in other:
                if (
                    start < turn.start_ms < end
                    and min(end, turn.end_ms) - turn.start_ms >= self._min_overlap_ms
                ):
                    count += 1
                    break
        return count


def _longest_gap(spans: list[Span], elapsed: int) -> int:
    longest, cursor = 0, 0
    for start, end in spans:
        longest = max(longest, start - cursor)
        cursor = max(cursor, end)
    return max(longest, elapsed - cursor)
