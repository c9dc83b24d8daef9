"""Stable text from a re-decoding engine: LocalAgreement-2 (whisper_streaming's policy).

Whisper re-decodes the whole open window each time, so its guesses change. A word is stable
once two consecutive decodes agree on it and on everything before it; only stable words go out
as deltas, and at the end of the window whatever the last decode says beyond them. Pure: text
in, deltas out; the concatenation of the deltas is the window's text.
"""

from __future__ import annotations


class LocalAgreement:
    """Deltas for one window of audio; `reset()` starts the next window."""

    def __init__(self) -> None:
        self._emitted: list[str] = []  # words sent as deltas in this window
        self._previous: list[str] = []  # the last decode's words

    def update(self, hypothesis: str) -> list[str]:
        """A new decode of the open window; returns the deltas now stable (maybe none)."""
        words = hypothesis.split()
        agreed = 0
        for a, b in zip(words, self._previous, strict=False):
            if a != b:
                break
            agreed += 1
        self._previous = words
        return self._emit(words[self._resume_at(words) : agreed])

    def finish(self, hypothesis: str) -> list[str]:
        """The last decode of the window: everything beyond what was sent, then a new window."""
        words = hypothesis.split()
        deltas = self._emit(words[self._resume_at(words) :])
        self.reset()
        return deltas

    def reset(self) -> None:
        self._emitted = []
        self._previous = []

    def _resume_at(self, words: list[str]) -> int:
        """Where the new decode goes on after the words already sent.

        A re-decode may insert or drop a word before that point; matching the last words sent
        (not just counting them) keeps a shifted decode from repeating a word.
        """
        sent = len(self._emitted)
        tail = self._emitted[-3:]
        if not tail:
            return 0
        matches = [
            i + len(tail) for i in range(len(words) - len(tail) + 1) if words[i : i + len(tail)] == tail
        ]
        return min(matches, key=lambda i: abs(i - sent)) if matches else sent

    def _emit(self, words: list[str]) -> list[str]:
        # Each word with its leading space, as Voxtral's tokens come: " Hello", " world".
        self._emitted.extend(words)
        return [f" {word}" for word in words]
