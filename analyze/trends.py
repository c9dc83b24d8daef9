"""Sentiment over the course of a call: per quarter, the trend, and a rolling window. Pure.

Each segment contributes one sample (its latest score: a partial's provisional score is replaced
by later partials and by the final of the same turn). Samples are weighted by their duration.

- Quarters: the call so far is cut into four equal parts by call position (the end of the
  latest segment), and each sample goes to the quarter holding its midpoint. A live call's
  quarters stretch as it goes on; at the end they are the quarters of the whole call.
- Trend: the last quarter's mean minus the mean of the earlier quarters that have speech, as
  Amazon Connect Contact Lens and the other commercial tools present it. Below zero: the call
  is getting worse.
- Rolling: the mean over the last `rolling_window_ms` of call time, for live dashboards.

The partial throttle (`PartialThrottle`) decides which partials are worth scoring: at most one
per turn every `min_interval_s`; the final always is, so the turn's last words are never lost.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from ingest.events import Leg

TrendScope = Literal["agent", "customer", "call"]
QUARTERS = 4
DEFAULT_ROLLING_WINDOW_MS = 60_000
DEFAULT_MAX_SAMPLES = 2_000


@dataclass(frozen=True, slots=True)
class TrendSummary:
    quarters: tuple[float | None, ...]  # mean compound per quarter; None where nobody spoke
    trend: float | None  # last quarter minus the mean of the earlier ones; None until both exist
    rolling: float | None  # mean over the rolling window
    samples: int
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class _Sample:
    leg: Leg
    start_ms: int
    end_ms: int
    compound: float
    final: bool

    @property
    def weight(self) -> float:
        return float(max(1, self.end_ms - self.start_ms))


class CallTrend:
    """Sentiment samples of one call, both legs; latest score per segment wins."""

    def __init__(
        self, *, rolling_window_ms: int = DEFAULT_ROLLING_WINDOW_MS, max_samples: int = DEFAULT_MAX_SAMPLES
    ) -> None:
        self.rolling_window_ms = rolling_window_ms
        self._max_samples = max_samples
        self._samples: OrderedDict[str, _Sample] = OrderedDict()
        self._elapsed_ms = 0

    @property
    def elapsed_ms(self) -> int:
        return self._elapsed_ms

    def observe(
        self, leg: Leg, segment_id: str, start_ms: int, end_ms: int, compound: float, *, final: bool
    ) -> None:
        """Record a segment's score; a partial arriving after its final is ignored."""
        known = self._samples.get(segment_id)
        if known is not None and known.final and not final:
            return
        self._samples[segment_id] = _Sample(leg, start_ms, max(start_ms, end_ms), compound, final)
        self._elapsed_ms = max(self._elapsed_ms, end_ms)
        while len(self._samples) > self._max_samples:
            self._samples.popitem(last=False)  # the oldest turn: only its quarter loses a sample

    def extend_to(self, elapsed_ms: int) -> None:
        """Stretch the call to its real length (at call end, silence after the last word counts)."""
        self._elapsed_ms = max(self._elapsed_ms, elapsed_ms)

    def to_dict(self) -> dict[str, object]:
        """Samples as `[segment_id, leg, start_ms, end_ms, compound, final]`, oldest first."""
        return {
            "elapsed_ms": self._elapsed_ms,
            "samples": [
                [k, s.leg, s.start_ms, s.end_ms, s.compound, s.final] for k, s in self._samples.items()
            ],
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        rolling_window_ms: int = DEFAULT_ROLLING_WINDOW_MS,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> CallTrend:
        trend = cls(rolling_window_ms=rolling_window_ms, max_samples=max_samples)
        for key, leg, start_ms, end_ms, compound, final in data["samples"][-max_samples:]:
            trend._samples[key] = _Sample(leg, int(start_ms), int(end_ms), float(compound), bool(final))
        trend._elapsed_ms = int(data["elapsed_ms"])
        return trend

    def summary(self, scope: TrendScope = "call") -> TrendSummary:
        samples = [s for s in self._samples.values() if scope == "call" or s.leg == scope]
        elapsed = self._elapsed_ms
        sums = [0.0] * QUARTERS
        weights = [0.0] * QUARTERS
        rolling_sum = rolling_weight = 0.0
        window_start = elapsed - self.rolling_window_ms
        for s in samples:
            midpoint = (s.start_ms + s.end_ms) / 2
            q = min(QUARTERS - 1, int(midpoint * QUARTERS / elapsed)) if elapsed > 0 else 0
            sums[q] += s.compound * s.weight
            weights[q] += s.weight
            if s.end_ms > window_start:
                rolling_sum += s.compound * s.weight
                rolling_weight += s.weight
        quarters = tuple(sums[q] / weights[q] if weights[q] else None for q in range(QUARTERS))
        earlier = [q for q in quarters[:-1] if q is not None]
        last = quarters[-1]
        trend = last - sum(earlier) / len(earlier) if last is not None and earlier else None
        return TrendSummary(
            quarters=quarters,
            trend=trend,
            rolling=rolling_sum / rolling_weight if rolling_weight else None,
            samples=len(samples),
            elapsed_ms=elapsed,
        )


class PartialThrottle:
    """Whether a partial is worth scoring now: at most one per turn per interval, latest wins."""

    def __init__(self, min_interval_s: float = 0.5, *, max_turns: int = 256) -> None:
        self._min_interval_s = min_interval_s
        self._max_turns = max_turns
        self._last_scored: OrderedDict[str, float] = OrderedDict()

    def should_score(self, segment_id: str, at_s: float, *, final: bool) -> bool:
        """`at_s`: the event's own time (its emitted_at), so a replay throttles the same way."""
        last = self._last_scored.get(segment_id)
        if not final and last is not None and at_s - last < self._min_interval_s:
            return False
        self._last_scored[segment_id] = at_s
        self._last_scored.move_to_end(segment_id)
        while len(self._last_scored) > self._max_turns:
            self._last_scored.popitem(last=False)
        return True

    def to_dict(self) -> list[list[object]]:
        """`[segment_id, last scored at_s]`, oldest first."""
        return [[k, at_s] for k, at_s in self._last_scored.items()]

    @classmethod
    def from_dict(
        cls, data: list[list[Any]], min_interval_s: float = 0.5, *, max_turns: int = 256
    ) -> PartialThrottle:
        throttle = cls(min_interval_s, max_turns=max_turns)
        for key, at_s in data[-max_turns:]:
            throttle._last_scored[key] = float(at_s)
        return throttle
