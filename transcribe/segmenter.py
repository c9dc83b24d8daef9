"""Turn segmentation policy: speech probabilities per VAD window in, turn boundaries out.

Pure and deterministic: the same audio always gives the same turns at the same sample positions,
which is what makes final segment ids stable when a call is re-read after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SegmenterConfig:
    start_threshold: float = 0.5  # probability at or above which speech may start
    end_threshold: float = 0.35  # below this, a window counts as silence (hysteresis)
    min_speech_ms: int = 250  # speech shorter than this never opens a turn
    max_silence_ms: int = 600  # silence that ends a turn
    pre_roll_ms: int = 200  # audio kept in front of the first speech window
    post_roll_ms: int = 150  # audio kept after the last speech window
    max_turn_ms: int = 9_500  # a turn must fit the engine's 10 s decode window
    window_samples: int = 512
    sample_rate_hz: int = 16_000

    def __post_init__(self) -> None:
        if not 0 < self.end_threshold <= self.start_threshold < 1:
            raise ValueError("need 0 < end_threshold <= start_threshold < 1")
        if self.max_turn_ms < 2 * self.min_speech_ms or self.max_turn_ms < 1_000:
            raise ValueError("max_turn_ms too short")

    def samples(self, ms: int) -> int:
        return ms * self.sample_rate_hz // 1000


@dataclass(frozen=True, slots=True)
class TurnStarted:
    start_sample: int
    kind: Literal["turn.started"] = "turn.started"


@dataclass(frozen=True, slots=True)
class TurnEnded:
    start_sample: int
    end_sample: int
    reason: Literal["silence", "max_length", "end_of_input"]
    kind: Literal["turn.ended"] = "turn.ended"


TurnEvent = TurnStarted | TurnEnded


class Segmenter:
    """Feed one probability per window, in order; get TurnStarted / TurnEnded events."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config or SegmenterConfig()
        self._windows = 0  # windows seen; position = windows * window_samples
        self._candidate: int | None = None  # first sample of speech not yet long enough to open a turn
        self._turn_start: int | None = None
        self._last_speech_end = 0
        self._last_turn_end = 0
        self._turn_probs: list[tuple[int, float]] = []  # (window start, probability) of the open turn

    @property
    def position(self) -> int:
        """Samples consumed so far."""
        return self._windows * self.config.window_samples

    @property
    def turn_start(self) -> int | None:
        return self._turn_start

    @property
    def retain_from(self) -> int:
        """Earliest sample the caller must still hold to serve the turns to come."""
        cfg = self.config
        if self._turn_start is not None:
            return self._turn_start
        anchor = self._candidate if self._candidate is not None else self.position
        return max(self._last_turn_end, anchor - cfg.samples(cfg.pre_roll_ms))

    def push(self, probability: float) -> list[TurnEvent]:
        cfg = self.config
        start = self.position
        self._windows += 1
        end = self.position
        if self._turn_start is None:
            return self._idle(probability, start, end)
        events: list[TurnEvent] = []
        self._turn_probs.append((start, probability))
        if probability >= cfg.end_threshold:
            self._last_speech_end = end
        elif end - self._last_speech_end >= cfg.samples(cfg.max_silence_ms):
            return [self._end_turn("silence")]
        if end - self._turn_start >= cfg.samples(cfg.max_turn_ms):
            events.extend(self._cut_turn())
        return events

    def flush(self) -> list[TurnEvent]:
        """End of input: close an open turn (a candidate too short to be speech is dropped)."""
        self._candidate = None
        if self._turn_start is None:
            return []
        return [self._end_turn("end_of_input")]

    def _idle(self, probability: float, start: int, end: int) -> list[TurnEvent]:
        cfg = self.config
        if self._candidate is None:
            if probability >= cfg.start_threshold:
                self._candidate = start
            else:
                return []
        elif probability < cfg.end_threshold:
            self._candidate = None
            return []
        if end - self._candidate < cfg.samples(cfg.min_speech_ms):
            return []
        turn_start = max(self._last_turn_end, self._candidate - cfg.samples(cfg.pre_roll_ms))
        self._turn_start = turn_start
        self._last_speech_end = end
        self._candidate = None
        # Windows of the candidate count as speech for later cut decisions.
        self._turn_probs = [(s, 1.0) for s in range(turn_start, end, cfg.window_samples)]
        return [TurnStarted(turn_start)]

    def _end_turn(self, reason: Literal["silence", "end_of_input"]) -> TurnEnded:
        assert self._turn_start is not None
        cfg = self.config
        end = min(self.position, self._last_speech_end + cfg.samples(cfg.post_roll_ms))
        event = TurnEnded(self._turn_start, end, reason)
        self._turn_start = None
        self._turn_probs = []
        self._last_turn_end = end
        return event

    def _cut_turn(self) -> list[TurnEvent]:
        """Too long: end at the least speechy window of the turn's second half, go on from there."""
        assert self._turn_start is not None
        cfg = self.config
        half = self._turn_start + cfg.samples(cfg.max_turn_ms) // 2
        candidates = [(p, -s) for s, p in self._turn_probs if s >= half]
        _, neg_cut = min(candidates)  # lowest probability; the latest such window on ties
        cut = -neg_cut
        ended = TurnEnded(self._turn_start, cut, "max_length")
        self._turn_start = cut
        self._last_turn_end = cut
        self._turn_probs = [(s, p) for s, p in self._turn_probs if s >= cut]
        return [ended, TurnStarted(cut)]
