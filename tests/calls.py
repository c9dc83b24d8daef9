"""Two-leg test calls built from real speech, with the reference text of every turn.

Agent leg: real 8 kHz telephone prompts (Asterisk). Customer leg: real LibriVox reading
(16 kHz), plus scripted phrases spoken by espeak-ng where no recording says the words a rule
needs (plumbing, not accuracy: `reference(include_scripted=False)` leaves them out).
Calls are built at 16 kHz; the replay encodes them to whichever codec a test sends.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from ingest.events import Leg
from ingest.replay import ReplayCall
from ingest.wavsource import Recording, resample
from tests.speech import Utterance, asterisk_prompts, librivox_utterances

GAP_S = 1.0
CALL_RATE_HZ = 16000
LEAD_S = 0.5


@dataclass(frozen=True)
class Turn:
    leg: Leg
    start_ms: int
    end_ms: int
    text: str
    scripted: bool = False


@dataclass(frozen=True)
class TestCall:
    __test__ = False  # a fixture, not a test class: pytest must not try to collect it

    call_id: str
    recording: Recording  # both legs at CALL_RATE_HZ
    turns: tuple[Turn, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.recording.duration_s

    def reference(self, leg: Leg, *, include_scripted: bool = True) -> str:
        return " ".join(t.text for t in self.turns if t.leg == leg and (include_scripted or not t.scripted))

    def replay(self, call_id: str | None = None) -> ReplayCall:
        return ReplayCall(recording=self.recording, call_id=call_id or self.call_id, agent_id="agent-7")


@cache
def speak(text: str, sample_rate_hz: int, voice: str = "en-us") -> np.ndarray:
    """Synthesise `text` with espeak-ng and resample it with sox (both Debian packages)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} missing: apt-get install espeak-ng sox")
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "145", "--stdout", text], check=True, capture_output=True
    ).stdout
    raw = subprocess.run(
        [
            "sox",
            "-t",
            "wav",
            "-",
            "-t",
            "raw",
            "-e",
            "signed",
            "-b",
            "16",
            "-c",
            "1",
            "-r",
            str(sample_rate_hz),
            "-",
        ],
        input=wav,
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype="<i2").copy()


def build_call(
    call_id: str,
    agent: list[Utterance | str],
    customer: list[Utterance | str],
) -> TestCall:
    """Alternate agent and customer turns (agent first), a gap of silence between turns.

    A `str` item is a scripted phrase synthesised for that leg.
    """
    pieces: dict[Leg, list[tuple[int, np.ndarray]]] = {"agent": [], "customer": []}
    turns: list[Turn] = []
    cursor_s = LEAD_S
    order: list[tuple[Leg, Utterance | str]] = []
    for i in range(max(len(agent), len(customer))):
        if i < len(agent):
            order.append(("agent", agent[i]))
        if i < len(customer):
            order.append(("customer", customer[i]))
    for leg, item in order:
        if isinstance(item, str):
            samples, text, scripted = speak(item, CALL_RATE_HZ), item, True
        else:
            samples, text, scripted = (
                resample(item.samples, item.sample_rate_hz, CALL_RATE_HZ),
                item.text,
                False,
            )
        pieces[leg].append((round(cursor_s * CALL_RATE_HZ), samples))
        duration_s = len(samples) / CALL_RATE_HZ
        turns.append(
            Turn(leg, round(cursor_s * 1000), round((cursor_s + duration_s) * 1000), _norm(text), scripted)
        )
        cursor_s += duration_s + GAP_S
    total = round((cursor_s + 0.5) * CALL_RATE_HZ)
    legs: dict[Leg, np.ndarray] = {}
    for leg, placed in pieces.items():
        out = np.zeros(total, dtype=np.int16)
        for start, samples in placed:
            out[start : start + len(samples)] = samples
        legs[leg] = out
    return TestCall(call_id, Recording(legs=legs, sample_rate_hz=CALL_RATE_HZ), tuple(turns))


def _norm(text: str) -> str:
    from tests.speech import normalise_text

    return normalise_text(text)


CANCEL_PHRASE = "I want to cancel my account."
MANAGER_PHRASE = "Let me speak to a manager."


def standard_calls() -> list[TestCall]:
    """The test calls: all LibriVox utterances and a spread of phone prompts, two scripted phrases."""
    prompts = asterisk_prompts()
    libri = list(librivox_utterances())
    picks = [prompts[i] for i in range(0, len(prompts), max(1, len(prompts) // 8))][:8]
    return [
        build_call("call-real-1", picks[:4], [libri[0], CANCEL_PHRASE, libri[1]]),
        build_call("call-real-2", picks[4:8], [libri[2], libri[3], MANAGER_PHRASE, libri[4]]),
    ]
