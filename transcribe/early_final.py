"""When to decode a turn before the segmenter has confirmed its end: pure policy.

The segmenter ends a turn max_silence_ms (600 ms) after the last speech window and cuts it at
that window plus post_roll_ms (150 ms). Once post_roll_ms of silence has passed, the audio the
final will cover is already known, so the session decodes it then, as a partial. If the silence
lasts, that decode becomes the final (the ~450 ms end-pointing wait hides the decode); if speech
resumes it was just a partial of the pause. This mirrors the segmenter's rule for the last speech
window; a guess that does not match the turn the segmenter ends is never used.
"""

from __future__ import annotations

from transcribe.segmenter import SegmenterConfig


class EarlyFinal:
    """Feed every VAD window after the segmenter has seen it; get (start, end) to decode early."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config or SegmenterConfig()
        self._speech_end = 0  # end of the last window that counted as speech in an open turn
        self._guessed: tuple[int, int] | None = None

    def push(self, probability: float, turn_start: int | None, position: int) -> tuple[int, int] | None:
        """`turn_start` and `position` as the segmenter reports them after this window."""
        cfg = self.config
        if turn_start is None:
            return None
        if probability >= cfg.end_threshold:
            self._speech_end = position
            return None
        if position - self._speech_end < cfg.samples(cfg.post_roll_ms):
            return None
        guess = (turn_start, self._speech_end + cfg.samples(cfg.post_roll_ms))
        if guess == self._guessed:
            return None
        self._guessed = guess
        return guess

    def matches(self, start: int, end: int) -> bool:
        """Whether the last guess is exactly the turn the segmenter ended."""
        return self._guessed == (start, end)
