"""Which records a worker accepts: call lifecycle and leg formats, as a pure state machine."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from ingest.events import AudioFrame, Codec, Leg


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str  # dead-letter reason code
    detail: str = ""


@dataclass
class CallState:
    call_id: str
    partition: int
    started_offset: int  # of its call.started on the audio topic; -1: opened from the transcript topic
    leg_formats: dict[Leg, tuple[Codec, int]] = field(default_factory=dict)
    opened_at: float = 0.0  # monotonic times, set by the worker: when it opened the call here,
    last_audio_at: float = 0.0  # and when a frame of it last came
    language: str | None = None  # from its call.started metadata (transcribe/language.py); None: default


class CallTable:
    """Open calls of one worker, and a bounded memory of recently ended ones."""

    def __init__(self, remembered_ended: int = 10_000) -> None:
        self._open: dict[str, CallState] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._remembered_ended = remembered_ended

    def get(self, call_id: str) -> CallState | None:
        return self._open.get(call_id)

    def start(self, call_id: str, partition: int, offset: int) -> CallState | None:
        """Open a call; None when it is already open (a duplicate call.started)."""
        if call_id in self._open:
            return None
        self._ended.pop(call_id, None)
        state = CallState(call_id, partition, offset)
        self._open[call_id] = state
        return state

    def check_frame(self, frame: AudioFrame) -> Rejected | None:
        """Accept a frame (recording its leg's format on first sight) or say why not."""
        state = self._open.get(frame.call_id)
        if state is None:
            if frame.call_id in self._ended:
                return Rejected("call_already_ended")
            return Rejected("call_not_started")
        fmt = (frame.codec, frame.sample_rate_hz)
        known = state.leg_formats.setdefault(frame.leg, fmt)
        if known != fmt:
            return Rejected(
                "leg_format_changed",
                f"{frame.leg}: {known[0].name}/{known[1]} Hz then {fmt[0].name}/{fmt[1]} Hz",
            )
        return None

    def end(self, call_id: str) -> CallState | Rejected:
        state = self._open.pop(call_id, None)
        if state is None:
            return Rejected("call_already_ended" if call_id in self._ended else "call_not_started")
        self._ended[call_id] = None
        while len(self._ended) > self._remembered_ended:
            self._ended.popitem(last=False)
        return state

    def open_calls(self) -> list[CallState]:
        return list(self._open.values())

    def drop_partition(self, partition: int) -> list[CallState]:
        dropped = [s for s in self._open.values() if s.partition == partition]
        for state in dropped:
            del self._open[state.call_id]
        return dropped

    def __len__(self) -> int:
        return len(self._open)
