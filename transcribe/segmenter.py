"""Turn segmentation policy: speech probabilities per VAD window in, turn boundaries out.

Pure and deterministic: the same audio always gives the same turns at the same sample positions,
which is what makes final segment ids stable when a call is re-read after a restart.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class SegmenterConfig:
    start_threshold: float = 0.5  # probability at or above which speech may start
    end_threshold: float = 0.35  # below this, a window counts as silence (hysteresis)
    min_speech_ms: int = 250  # speech shorter than this never opens a turn
    max_silence_ms: int = 600  # silence that ends a turn
    pre_roll_ms: int = 200  # audio kept in front of the first speech window (decoded, not reported)
    onset_lead_ms: int = 32  # reported turn start: this much before the first speech window
    # Silero on phone audio can miss a soft first word ("Asterisk is ..." scores 0.1 for 300 ms).
    # Where window energies are given, the onset walks back from the first speech window over
    # windows louder than the recent noise floor by onset_loud_db (and above onset_min_dbfs),
    # bridging quiet gaps up to onset_bridge_ms, at most onset_lookback_ms.
    onset_lookback_ms: int = 800
    onset_bridge_ms: int = 200
    onset_loud_db: float = 20.0
    onset_min_dbfs: float = -40.0  # room tone of a quiet line sits at -45 to -50
    post_roll_ms: int = 150  # audio kept after the last speech window
    # A turn's final is decoded whole, in Whisper's 30 s window when it is longer than 10 s (a cut
    # loses words at its edges); only a turn reaching this is cut. LocalSession takes at most
    # 29.5 s (the window); the realtime session cuts its turns itself (10**9 here).
    max_turn_ms: int = 28_000
    cut_search_ms: int = 3_000  # a too-long turn is cut at the quietest window of its last seconds
    cut_overlap_ms: int = 1_000  # a cut inside speech: the next turn re-decodes this much before it
    window_samples: int = 512
    sample_rate_hz: int = 16_000

    def __post_init__(self) -> None:
        if not 0 < self.end_threshold <= self.start_threshold < 1:
            raise ValueError("need 0 < end_threshold <= start_threshold < 1")
        if self.max_turn_ms < 2 * self.min_speech_ms or self.max_turn_ms < 1_000:
            raise ValueError("max_turn_ms too short")
        if self.cut_search_ms <= 0 or self.cut_overlap_ms < 0:
            raise ValueError("need cut_search_ms > 0 and cut_overlap_ms >= 0")

    def samples(self, ms: int) -> int:
        return ms * self.sample_rate_hz // 1000


@dataclass(frozen=True, slots=True)
class TurnStarted:
    start_sample: int  # first sample to decode: pre-roll included
    onset_sample: int | None = None  # where the speech starts, as reported (None: start_sample)
    # After a cut inside speech: the turn starts cut_overlap_ms before the cut and keeps only
    # the words whose middle is at or after this sample (the previous turn keeps those before).
    words_from: int | None = None
    kind: Literal["turn.started"] = "turn.started"

    @property
    def onset(self) -> int:
        return self.start_sample if self.onset_sample is None else self.onset_sample


@dataclass(frozen=True, slots=True)
class TurnEnded:
    start_sample: int
    end_sample: int
    reason: Literal["silence", "max_length", "end_of_input"]
    onset_sample: int | None = None
    words_until: int | None = None  # cut inside speech: keep only words whose middle is before this
    kind: Literal["turn.ended"] = "turn.ended"

    @property
    def onset(self) -> int:
        return self.start_sample if self.onset_sample is None else self.onset_sample


TurnEvent = TurnStarted | TurnEnded


class Segmenter:
    """Feed one probability per window, in order; get TurnStarted / TurnEnded events."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config or SegmenterConfig()
        self._windows = 0  # windows seen; position = windows * window_samples
        self._candidate: int | None = None  # first sample of speech not yet long enough to open a turn
        self._turn_start: int | None = None
        self._onset: int | None = None  # reported start of the open turn
        self._last_speech_end = 0
        self._last_turn_end = 0
        # (window start, probability, RMS energy or None) of each window of the open turn
        self._turn_probs: list[tuple[int, float, float | None]] = []
        self._quiet: deque[tuple[int, float]] = deque(
            maxlen=max(1, 2 * self.config.sample_rate_hz // self.config.window_samples)
        )  # (start, dBFS) of recent windows outside turns

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
        return max(self._last_turn_end, anchor - cfg.samples(cfg.pre_roll_ms + cfg.onset_lookback_ms))

    def push(self, probability: float, energy: float | None = None) -> list[TurnEvent]:
        """One window's speech probability, and its RMS energy if known (finds quiet cut points)."""
        cfg = self.config
        start = self.position
        self._windows += 1
        end = self.position
        if self._turn_start is None:
            if energy is not None:
                self._quiet.append((start, 20 * math.log10(energy + 1e-9)))
            return self._idle(probability, start, end)
        events: list[TurnEvent] = []
        self._turn_probs.append((start, probability, energy))
        if probability >= cfg.end_threshold:
            self._last_speech_end = end
        elif end - self._last_speech_end >= cfg.samples(cfg.max_silence_ms):
            return [self._end_turn("silence")]
        if end + cfg.window_samples - self._turn_start > cfg.samples(
            cfg.max_turn_ms
        ):  # next one would not fit
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
        refined = self._speech_onset(self._candidate)
        turn_start = max(self._last_turn_end, refined - cfg.samples(cfg.pre_roll_ms))
        onset = max(turn_start, min(refined, self._candidate - cfg.samples(cfg.onset_lead_ms)))
        self._turn_start, self._onset = turn_start, onset
        self._last_speech_end = end
        self._candidate = None
        # Windows of the candidate count as speech for later cut decisions.
        self._turn_probs = [(s, 1.0, None) for s in range(turn_start, end, cfg.window_samples)]
        return [TurnStarted(turn_start, onset)]

    def _speech_onset(self, candidate: int) -> int:
        """Walk back from the first speech window over loud windows (see onset_lookback_ms)."""
        cfg = self.config
        history = [(s, db) for s, db in self._quiet if max(0, self._last_turn_end) <= s < candidate]
        if not history:
            return candidate
        levels = sorted(db for _, db in self._quiet)
        floor = levels[len(levels) // 10]
        loud = max(floor + cfg.onset_loud_db, cfg.onset_min_dbfs)
        onset, quiet = candidate, 0
        for s, db in reversed(history):
            if s < candidate - cfg.samples(cfg.onset_lookback_ms):
                break
            if db >= loud:
                onset, quiet = s, 0
            else:
                quiet += cfg.window_samples
                if quiet > cfg.samples(cfg.onset_bridge_ms):
                    break
        return onset

    def _end_turn(self, reason: Literal["silence", "end_of_input"]) -> TurnEnded:
        assert self._turn_start is not None
        cfg = self.config
        end = min(self.position, self._last_speech_end + cfg.samples(cfg.post_roll_ms))
        event = TurnEnded(self._turn_start, end, reason, self._onset)
        self._turn_start = self._onset = None
        self._turn_probs = []
        self._last_turn_end = end
        return event

    def _cut_turn(self) -> list[TurnEvent]:
        """Too long: cut at the quietest window of the last cut_search_ms, go on from there.

        Quietest: a window below end_threshold (a pause) before any speech window, then the lowest
        energy (the probability where energy is unknown), the latest on ties. A cut in a pause
        splits no word. A cut inside speech may split one: the next turn then starts
        cut_overlap_ms earlier, and the two turns split their words at the middle of the overlap
        (by the engine's word timestamps), so each word is kept by exactly one of them.
        """
        assert self._turn_start is not None
        cfg = self.config
        # Short max_turn_ms: search the turn's second half at most, overlap half the search at most.
        search_ms = min(cfg.cut_search_ms, cfg.max_turn_ms // 2)
        overlap = cfg.samples(min(cfg.cut_overlap_ms, search_ms // 2))
        lo = self.position - cfg.samples(search_ms)

        def quietness(window: tuple[int, float, float | None]) -> tuple[bool, float, int]:
            start, probability, energy = window
            return (probability >= cfg.end_threshold, probability if energy is None else energy, -start)

        cut_start, cut_probability, _ = min((w for w in self._turn_probs if w[0] >= lo), key=quietness)
        cut = cut_start + cfg.window_samples // 2  # the middle of the quiet window
        in_speech = cut_probability >= cfg.end_threshold and overlap > 0
        split = cut - overlap // 2 if in_speech else None
        ended = TurnEnded(self._turn_start, cut, "max_length", self._onset, words_until=split)
        next_start = cut - overlap if in_speech else cut
        self._turn_start = next_start
        self._onset = split if split is not None else cut
        self._last_turn_end = cut
        self._turn_probs = [w for w in self._turn_probs if w[0] >= next_start]
        return [ended, TurnStarted(next_start, self._onset, words_from=split)]


def quietest_cut(
    samples: np.ndarray, search_samples: int, *, window_samples: int = 512, pause_db: float = 20.0
) -> tuple[int, bool]:
    """Where to cut audio that must be cut (no VAD at hand): the middle of the quietest window of
    its last `search_samples`, the latest on ties; and whether that window is a pause (quieter
    than -50 dBFS, or `pause_db` below the median window there), which splits no word."""
    n = len(samples)
    lo = max(0, n - search_samples)
    lo = lo + (n - lo) % window_samples  # whole windows ending at the end
    frames = np.asarray(samples[lo:n], dtype=np.float32).reshape(-1, window_samples)
    if not len(frames):
        return n, False
    db = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    k = int(len(db) - 1 - np.argmin(db[::-1]))
    pause = bool(db[k] <= -50.0 or db[k] <= float(np.median(db)) - pause_db)
    return lo + k * window_samples + window_samples // 2, pause
