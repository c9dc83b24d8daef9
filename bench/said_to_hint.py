"""When a phrase was said, in wall time, and how long after it its hint came (pure).

Two clocks meet here. The phrase's position comes from the audio itself (word timestamps of the
recording, in seconds from the leg's first sample: "call time"); the hint's `emitted_at` is wall
time. The bridge is the transcript's own stamps: a segment's `times.audio_captured_at` is the
capture (wall) time of its newest audio, whose position in the leg is `end_ms`. So for every
segment of a leg, `audio_captured_at - end_ms / 1000 / speed` is the wall time of that leg's
sample 0: the leg's capture base. The replay stamps each frame `wall_start + offset / speed` (call
time runs `speed` times faster than wall time; at speed 0, as fast as possible, nothing maps) and
the transcriber interpolates within its frames, so every segment of a leg gives the same base up
to the millisecond rounding of `end_ms`; the spread of the bases is reported, and a spread beyond
`MAX_BASE_SPREAD_S` means the mapping does not hold (a paced source that drifted,
a leg restarted at another position): that call is counted as unmapped, never guessed. The
replay starts the clock of both legs at the call's `started_at`, so each leg's base should also
equal it: the worst difference is reported as a second check. The stamps are the frames' slot
times (when the audio was due), not when the replay got round to sending them, so a late replay
shows as latency here, as a late caller's network would.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from analyze.events import AgentHint, AssistEvent
from ingest.events import Leg
from transcribe.events import FinalSegment, PartialSegment, TranscriptCallStarted, TranscriptEvent

MAX_BASE_SPREAD_S = 0.05  # two frames and a half: more than this and the partials disagree
_WORD = re.compile(r"[a-z0-9']+")


class TimedWord(Protocol):
    """A word with its place in a clip (transcribe.whisper_engine.Word is one)."""

    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class PhraseTiming:
    """Where a phrase lies in its leg: seconds from the leg's first sample."""

    phrase: str
    start_s: float  # start of its first word
    end_s: float  # end of its last word


def _norm(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def find_phrase(words: Sequence[TimedWord], phrase: str, clip_start_s: float) -> PhraseTiming | None:
    """The first run of `words` that spells `phrase` (case and punctuation ignored), in call time.

    `clip_start_s` is where the decoded clip starts in its leg. Words that are only punctuation
    (Whisper gives "." its own timestamp) are skipped.
    """
    wanted = _norm(phrase)
    if not wanted:
        raise ValueError("empty phrase")
    spoken = [(w, tokens) for w in words if (tokens := _norm(w.text))]
    flat = [(w, token) for w, tokens in spoken for token in tokens]
    for i in range(len(flat) - len(wanted) + 1):
        if [token for _, token in flat[i : i + len(wanted)]] == wanted:
            first, last = flat[i][0], flat[i + len(wanted) - 1][0]
            return PhraseTiming(phrase, clip_start_s + first.start_s, clip_start_s + last.end_s)
    return None


@dataclass(frozen=True)
class CaptureBase:
    """Wall time of a leg's sample 0, from the partials of that leg."""

    base_at: float  # median over the partials
    spread_s: float  # max - min of the per-partial bases
    partials: int


def capture_bases(
    transcripts: Iterable[TranscriptEvent], *, speed: float = 1.0
) -> dict[tuple[str, Leg], CaptureBase]:
    """Per (call, leg): the capture base `audio_captured_at - end_ms / 1000 / speed` over its partials."""
    if speed <= 0:
        return {}  # replayed as fast as possible: call time says nothing about wall time
    bases: dict[tuple[str, Leg], list[float]] = {}
    for event in transcripts:
        if isinstance(event, PartialSegment):
            key = (event.call_id, event.leg)
            bases.setdefault(key, []).append(event.times.audio_captured_at - event.end_ms / 1000 / speed)
    return {
        key: CaptureBase(statistics.median(values), max(values) - min(values), len(values))
        for key, values in bases.items()
    }


@dataclass(frozen=True)
class HintTiming:
    call_id: str
    said_end_at: float  # wall time the phrase's last word ended
    said_start_at: float  # wall time its first word started
    hint: AgentHint  # the first hint of the rule on that leg
    # Call time of the newest audio of the segment the hint fired on (None: that revision not read
    # back). Before the phrase's end: the model completed the word from its beginning.
    heard_up_to_s: float | None = None

    @property
    def from_end_s(self) -> float:
        return self.hint.emitted_at - self.said_end_at

    @property
    def from_start_s(self) -> float:
        return self.hint.emitted_at - self.said_start_at


@dataclass(frozen=True)
class HintOutcome:
    timings: tuple[HintTiming, ...]
    no_hint: tuple[str, ...]  # calls whose rule never fired on that leg
    unmapped: tuple[str, ...]  # calls without partials on that leg, or whose bases disagree
    max_spread_s: float  # the worst base spread among the mapped calls
    # Worst |leg base - call.started_at| among the mapped calls: the replay starts both legs' clock
    # at the call's start, so this is a second, independent check of the mapping (None: no start seen).
    max_start_offset_s: float | None = None


def hint_timings(
    call_ids: Sequence[str],
    transcripts: Iterable[TranscriptEvent],
    assist: Iterable[AssistEvent],
    phrase: PhraseTiming,
    *,
    rule_id: str,
    leg: Leg,
    speed: float = 1.0,
) -> HintOutcome:
    """For each call: the first `rule_id` hint on `leg` against when `phrase` was said there,
    the call replayed at `speed` times real time."""
    transcripts = list(transcripts)
    bases = capture_bases(transcripts, speed=speed)
    started = {e.call_id: e.started_at for e in transcripts if isinstance(e, TranscriptCallStarted)}
    # A hint names its segment and that revision's emitted_at: the revision whose audio it read.
    heard = {
        (e.segment_id, e.times.emitted_at): e.end_ms / 1000
        for e in transcripts
        if isinstance(e, PartialSegment | FinalSegment)
    }
    first: dict[str, AgentHint] = {}
    for event in assist:
        if isinstance(event, AgentHint) and event.rule_id == rule_id and event.leg == leg:
            seen = first.get(event.call_id)
            if seen is None or event.emitted_at < seen.emitted_at:
                first[event.call_id] = event
    timings: list[HintTiming] = []
    no_hint: list[str] = []
    unmapped: list[str] = []
    spreads: list[float] = []
    start_offsets: list[float] = []
    for call_id in call_ids:
        base = bases.get((call_id, leg))
        if base is None or base.spread_s > MAX_BASE_SPREAD_S:
            unmapped.append(call_id)
            continue
        hint = first.get(call_id)
        if hint is None:
            no_hint.append(call_id)
            continue
        spreads.append(base.spread_s)
        if call_id in started:
            start_offsets.append(abs(base.base_at - started[call_id]))
        timings.append(
            HintTiming(
                call_id,
                base.base_at + phrase.end_s / speed,
                base.base_at + phrase.start_s / speed,
                hint,
                heard.get((hint.segment_id, hint.segment_emitted_at)),
            )
        )
    return HintOutcome(
        tuple(timings),
        tuple(no_hint),
        tuple(unmapped),
        max(spreads, default=0.0),
        max(start_offsets, default=None),
    )


def quiet_onset_s(
    samples: Sequence[float] | object,
    sample_rate_hz: int,
    near_s: float,
    *,
    search_s: float = 0.3,
    min_quiet_s: float = 0.08,
    frame_s: float = 0.02,
    relative_level: float = 0.01,
) -> float | None:
    """Where the leg first falls quiet (for `min_quiet_s`) within `search_s` of `near_s`, or None.

    A cross-check of a word's end from the audio's energy alone: quiet is a frame RMS below
    `relative_level` of the loudest frame of `samples`. Times are seconds from `samples[0]`.
    """
    import numpy as np

    audio = np.asarray(samples, dtype=np.float64)
    hop = max(1, round(frame_s * sample_rate_hz))
    frames = len(audio) // hop
    if frames == 0:
        return None
    rms = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop) ** 2, axis=1))
    quiet = rms < relative_level * rms.max() if rms.max() > 0 else np.ones(frames, dtype=bool)
    need = max(1, round(min_quiet_s / frame_s))
    lo = max(0, int((near_s - search_s) / frame_s))
    hi = min(frames, int((near_s + search_s) / frame_s) + 1)
    for i in range(lo, hi):
        if quiet[i : i + need].all() and len(quiet[i : i + need]) == need and (i == 0 or not quiet[i - 1]):
            return i * frame_s
    return None
