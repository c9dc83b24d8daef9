"""What the assist policy remembers about one call, and its compact, versioned serialised form. Pure.

`CallState.to_dict()` / `CallState.from_dict()` round-trip everything that decides the call's later
events: per recent segment the digest of the last scored text and the event ids already emitted,
the rules fired so far, the customer's sentiment sums, the checklist, and the live figures
(trend samples, conversation turns, partial throttle, next metrics mark). The worker keeps the
encoded form in a faust table keyed by call_id (analyze.app); no transcript text is in it, only
digests, positions and figures.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from analyze.compliance import ComplianceTracker
from analyze.events import AgentHint, AssistEvent, ComplianceState, SupervisorAlert
from analyze.live import LiveCall, LiveSettings
from analyze.rules import RuleMatcher
from transcribe.events import FinalSegment, PartialSegment, TranscriptCallStarted, TranscriptEvent

STATE_FORMAT = 1


class StateFormatError(ValueError):
    """A saved call state this version cannot read; the call carries on from a fresh state."""

    retryable = False


def text_digest(text: str) -> str:
    """Stands in for a revision's text: equality is all the policy asks of it."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(slots=True)
class SegmentState:
    last_digest: str | None = None  # text_digest of the last scored revision
    last_revision: int = -1
    final: bool = False
    fired: set[str] = field(default_factory=set)


class CallState:
    """Per-call memory of AssistPolicy; bounded to the call's most recent segments."""

    __slots__ = (
        "_max_segments",
        "compliance",
        "compliance_version",
        "customer_sentiment",
        "fired_rules",
        "last_ms",
        "live",
        "segments",
        "trend",
    )

    def __init__(self, call_id: str, max_segments: int, matcher: RuleMatcher, live: LiveSettings) -> None:
        self._max_segments = max_segments
        self.segments: OrderedDict[str, SegmentState] = OrderedDict()
        self.fired_rules: set[str] = set()  # rule ids, for after_rules / unless_rules conditions
        self.customer_sentiment: list[float] = [0.0, 0.0]  # sum and count of the customer's finals
        # The sentiment trend figure of the call (analyze.trends), for call_trend_below conditions;
        # None until the trend step of the policy sets it.
        self.trend: float | None = None
        self.last_ms = 0  # furthest call position seen, for the end of the checklist
        # The checklist stays that of the rule set the call started with, across a hot reload.
        self.compliance = ComplianceTracker(matcher.rule_set.compliance)
        self.compliance_version = matcher.rule_set.version
        self.live = LiveCall(call_id, live)

    @property
    def call_sentiment(self) -> float | None:
        total, count = self.customer_sentiment
        return total / count if count else None

    def segment(self, segment_id: str) -> SegmentState:
        state = self.segments.get(segment_id)
        if state is None:
            state = self.segments[segment_id] = SegmentState()
            # Old turns are long over; forgetting them only risks a repeat on a replayed record.
            while len(self.segments) > self._max_segments:
                self.segments.popitem(last=False)
        return state

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_FORMAT,
            "segments": [
                [key, s.last_digest, s.last_revision, s.final, sorted(s.fired)]
                for key, s in self.segments.items()
            ],
            "fired_rules": sorted(self.fired_rules),
            "customer_sentiment": list(self.customer_sentiment),
            "trend": self.trend,
            "last_ms": self.last_ms,
            "compliance_version": self.compliance_version,
            "compliance": self.compliance.to_dict(),
            "live": self.live.to_dict(),
        }

    @classmethod
    def from_dict(
        cls,
        call_id: str,
        data: dict[str, Any],
        *,
        max_segments: int,
        matcher: RuleMatcher,
        live: LiveSettings,
    ) -> CallState:
        """Raises StateFormatError for another format version or a malformed state.

        The checklist keeps its saved version when the current rule set is that version; after a
        reload to another version the call carries on with the current checklist, keeping the
        state of the steps both versions have (the old version's items are not kept).
        """
        if not isinstance(data, dict) or data.get("v") != STATE_FORMAT:
            raise StateFormatError("unknown call state format")
        try:
            state = cls(call_id, max_segments, matcher, live)
            for key, digest, revision, final, fired in data["segments"][-max_segments:]:
                state.segments[key] = SegmentState(digest, int(revision), bool(final), set(fired))
            state.fired_rules = set(data["fired_rules"])
            total, count = data["customer_sentiment"]
            state.customer_sentiment = [float(total), float(count)]
            state.trend = data["trend"]
            state.last_ms = int(data["last_ms"])
            state.compliance = ComplianceTracker.from_dict(matcher.rule_set.compliance, data["compliance"])
            state.live = LiveCall.from_dict(call_id, live, data["live"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError("malformed call state") from exc
        return state


def encode_state(state: dict[str, Any]) -> bytes:
    """Compact JSON, zlib-compressed: segment ids repeat the call id in every entry."""
    return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)


def decode_state(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(zlib.decompress(raw))
    except (zlib.error, ValueError) as exc:
        raise StateFormatError("undecodable call state") from exc
    if not isinstance(data, dict) or data.get("v") != STATE_FORMAT:
        raise StateFormatError("unknown call state format")
    return data


def worth_saving(event: TranscriptEvent, produced: Sequence[AssistEvent]) -> bool:
    """Whether a state change after `event` is worth a changelog record.

    Finals and call starts always are; a partial only when it fired a rule or moved the checklist.
    What a crash then loses (the partial throttle and the provisional span and score of a turn in
    flight) is replaced by that turn's final anyway.
    """
    match event:
        case TranscriptCallStarted() | FinalSegment():
            return True
        case PartialSegment():
            return any(isinstance(e, AgentHint | SupervisorAlert | ComplianceState) for e in produced)
    return False


@dataclass(frozen=True, slots=True)
class EndedMark:
    """What the state table keeps of a call after its end, for a while: that it ended, when
    (this worker's clock) and on which transcript partition, so the mark can be dropped later
    while a record of that partition is processed. Plain JSON, where a state is zlib."""

    at: float
    partition: int

    def encode(self) -> bytes:
        return json.dumps({"v": STATE_FORMAT, "ended_at": self.at, "partition": self.partition}).encode()

    @staticmethod
    def is_mark(raw: bytes) -> bool:
        return raw[:1] == b"{"  # zlib output starts with 0x78

    @classmethod
    def decode(cls, raw: bytes) -> EndedMark:
        try:
            data = json.loads(raw)
            return cls(float(data["ended_at"]), int(data["partition"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError("malformed end mark") from exc
