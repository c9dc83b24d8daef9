"""Turn and utterance bookkeeping of a realtime session (vllm_session.py): pure, no loop, no socket.

Positions are samples at 16 kHz since the session's first sample. A turn is cut by the segmenter
(or by length); each turn is sent as one utterance, again from its start after a reconnect.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from transcribe.segmenter import TurnEnded, TurnStarted

RATE_HZ = 16_000


def ms(samples: int) -> int:
    return samples * 1000 // RATE_HZ


@dataclass
class Turn:
    start: int  # samples since the session's first sample
    end: int | None = None  # set when the segmenter (or the length cut) closes the turn
    revision: int = 0  # partials emitted so far, across reconnects


@dataclass
class Utterance:
    """One attempt at sending a turn: how far it was sent, and the text streamed back so far."""

    sent: int
    final_sent: bool = False
    committed_at: float = field(default_factory=time.monotonic)
    first_delta: bool = True
    unanswered_since: float | None = None  # first send after the last server event
    text: str = ""
    last_partial: str = ""
    partial_at: int = -1  # `sent` when the last partial went out

    def add_delta(self, delta: str) -> str | None:
        """Append a delta; returns the text of a new partial when the delta completes a word.

        A delta that opens a new word closes the previous one. At most one partial per piece of
        audio sent: a burst of deltas (the server catching up) gives one.
        """
        partial = None
        settled = self.text.strip()
        if delta[:1].isspace() and settled and settled != self.last_partial and self.sent != self.partial_at:
            self.partial_at = self.sent
            self.last_partial = partial = settled
        self.text += delta
        return partial


class TurnBook:
    """The leg's turns not yet final, oldest first; the oldest is the one being sent."""

    def __init__(self, max_turn_samples: int) -> None:
        self.max_turn_samples = max_turn_samples
        self.turns: deque[Turn] = deque()
        self.segmented = 0  # audio the segmenter has decided on; an open turn is sent up to here
        self.last_sent_end = 0  # no sample is sent in two successful utterances

    def apply(self, event: TurnStarted | TurnEnded) -> None:
        match event:
            case TurnStarted(start_sample=start):
                self.turns.append(Turn(start))
            case TurnEnded(end_sample=end):
                turn = self.turns[-1]
                turn.end = max(end, turn.start)

    def cut_long_turn(self, position: int) -> None:
        """Close a long turn at `position` and go on in a new one (no audio is in two turns)."""
        if not self.turns or self.turns[-1].end is not None:
            return
        if position - self.turns[-1].start >= self.max_turn_samples:
            self.turns[-1].end = position
            self.turns.append(Turn(position))

    def keep_from(self, segmenter_keeps: int) -> int:
        """Earliest sample still needed: by the segmenter, or by a turn not yet final."""
        return min(segmenter_keeps, self.turns[0].start) if self.turns else segmenter_keeps

    def limit(self, turn: Turn) -> int:
        """How far a turn's audio may be sent: its end, or what the segmenter has decided on."""
        return turn.end if turn.end is not None else self.segmented

    def first_unsent(self, turn: Turn) -> int:
        """Where the turn's utterance starts: after the audio an earlier final already covers."""
        return max(turn.start, self.last_sent_end)

    def needs_sending(self, turn: Turn) -> bool:
        """False for a closed turn whose audio an earlier utterance already covered."""
        return turn.end is None or turn.end > self.first_unsent(turn)

    def finish(self, turn: Turn, utterance: Utterance) -> None:
        """The turn's utterance is done; if the server ended it early, the rest becomes a new turn."""
        if not utterance.final_sent:  # ended by the server's length limit (max_model_len)
            self.turns.insert(1, Turn(utterance.sent, turn.end))
            turn.end = utterance.sent
        self.last_sent_end = utterance.sent

    def drop_oldest(self) -> None:
        self.turns.popleft()
