"""Live state of every active call, folded from transcript and assist events. Pure and bounded.

Every change bumps one version counter; each call, line and timeline mark remembers the version
that last changed it, so a stream sends only what changed since the version it last sent.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Any

from analyze.events import (
    AgentHint,
    AssistEvent,
    ComplianceState,
    ConversationMetrics,
    RedactionAudit,
    Sentiment,
    SentimentTrend,
    SupervisorAlert,
)
from transcribe.events import (
    FinalSegment,
    LegError,
    PartialSegment,
    TranscriptCallEnded,
    TranscriptCallStarted,
    TranscriptEvent,
)

SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}
MAX_LINES_PER_CALL = 2000
MAX_MARKS_PER_CALL = 500
MAX_SENTIMENT_POINTS = 600
MAX_LATENCY_SAMPLES = 200
MAX_UNROUTED = 50
MAX_TOUCHED = 50_000
LATENCY_STAGES = ("audio_to_partial", "speech_end_to_final", "final_to_hint")


@dataclass
class Line:
    """One turn of one leg: its latest partial until its final replaces it."""

    segment_id: str
    leg: str
    start_ms: int
    end_ms: int
    text: str
    final: bool
    revision: int
    version: int
    sentiment: float | None = None

    def view(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "leg": self.leg,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "text": self.text,
            "final": self.final,
            "sentiment": self.sentiment,
        }


@dataclass
class Mark:
    """A hint or alert on the call's timeline, with the rule behind it."""

    event_id: str
    kind: str  # hint | alert
    leg: str
    segment_id: str
    rule_id: str
    rule_version: str
    matched: str
    matched_by: str
    category: str
    before_turn_end: bool
    text: str
    severity: str | None
    emitted_at: float
    version: int
    knowledge_title: str = ""
    knowledge_snippet: str = ""

    def view(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "version"}


@dataclass
class LiveCall:
    call_id: str
    version: int
    last_event_at: float  # feed clock (monotonic) of the newest event, for stale-call eviction
    agent_id: str = ""
    queue: str = ""
    direction: str = "inbound"
    source: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    end_reason: str = ""
    lines: OrderedDict[str, Line] = field(default_factory=OrderedDict)
    marks: OrderedDict[str, Mark] = field(default_factory=OrderedDict)
    sentiment_now: dict[str, float | None] = field(default_factory=lambda: {"agent": None, "customer": None})
    trend: dict[str, float | None] = field(default_factory=lambda: {"agent": None, "customer": None})
    # (segment id, emitted at, compound) of each final, per leg; placed in the call when shown,
    # since the assist topic is read apart from the transcript topic (read-back may fold it first)
    sentiment_series: dict[str, deque[tuple[str, float, float]]] = field(
        default_factory=lambda: {leg: deque(maxlen=MAX_SENTIMENT_POINTS) for leg in ("agent", "customer")}
    )
    compliance_version: str = ""
    compliance: tuple[dict[str, Any], ...] = ()
    metrics: dict[str, Any] | None = None
    latency: dict[str, deque[float]] = field(
        default_factory=lambda: {s: deque(maxlen=MAX_LATENCY_SAMPLES) for s in LATENCY_STAGES}
    )
    leg_errors: list[dict[str, Any]] = field(default_factory=list)
    redactions: int = 0
    _partial_seen: set[str] = field(default_factory=set)
    # Agent items folded before call.started told whose call it is (the assist and transcript
    # topics are read independently, so a hint can arrive first); sent on call.started.
    _unrouted: list[AgentItem] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def alert_count(self) -> int:
        return sum(1 for m in self.marks.values() if m.kind == "alert")

    @property
    def worst_severity(self) -> str | None:
        ranks = [SEVERITY_RANK.get(m.severity or "", 0) for m in self.marks.values() if m.kind == "alert"]
        best = max(ranks, default=0)
        return next((name for name, rank in SEVERITY_RANK.items() if rank == best), None)

    @property
    def compliance_state(self) -> str:
        """missed if any step was missed, met when all applicable steps are met, else pending."""
        statuses = [s["status"] for s in self.compliance if s["status"] != "not_applicable"]
        if not self.compliance:
            return "none"
        if "missed" in statuses:
            return "missed"
        return "met" if all(s == "met" for s in statuses) else "pending"

    def latency_summary(self) -> dict[str, dict[str, float | int | None]]:
        out: dict[str, dict[str, float | int | None]] = {}
        for stage, samples in self.latency.items():
            values = sorted(samples)
            out[stage] = {
                "count": len(values),
                "p50_s": round(statistics.median(values), 3) if values else None,
                "max_s": round(values[-1], 3) if values else None,
                "last_s": round(samples[-1], 3) if samples else None,
            }
        return out

    def row(self, now: float) -> dict[str, Any]:
        """What the live wall shows of this call."""
        return {
            "call_id": self.call_id,
            "agent_id": self.agent_id,
            "queue": self.queue,
            "direction": self.direction,
            "started_at": self.started_at,
            "duration_s": round(max(0.0, now - self.started_at), 1) if self.started_at else None,
            "sentiment": dict(self.sentiment_now),
            "trend": dict(self.trend),
            "alerts": self.alert_count,
            "worst_severity": self.worst_severity,
            "compliance": self.compliance_state,
            "ended": not self.active,
        }

    def position_ms(self, segment_id: str, at: float) -> int:
        """Where in the call an event belongs: its segment's start, else its time since the start."""
        line = self.lines.get(segment_id)
        if line is not None:
            return line.start_ms
        return max(0, round((at - self.started_at) * 1000)) if self.started_at else 0

    def detail(self, now: float, *, since: int = 0) -> dict[str, Any]:
        """The call view: summary, plus the lines and marks changed after version `since`."""
        return {
            "call": self.row(now)
            | {"source": self.source, "ended_at": self.ended_at, "end_reason": self.end_reason},
            "version": self.version,
            "lines": [line.view() for line in self.lines.values() if line.version > since],
            "marks": [
                mark.view() | {"at_ms": self.position_ms(mark.segment_id, mark.emitted_at)}
                for mark in self.marks.values()
                if mark.version > since
            ],
            "sentiment_series": {
                leg: sorted((self.position_ms(seg, at), compound) for seg, at, compound in points)
                for leg, points in self.sentiment_series.items()
            },
            "compliance": {"rule_version": self.compliance_version, "steps": list(self.compliance)},
            "metrics": self.metrics,
            "latency": self.latency_summary(),
            "leg_errors": list(self.leg_errors),
        }


@dataclass(frozen=True)
class AgentItem:
    """What the agent's panel receives: a hint, an agent-facing alert, customer sentiment, call start/end."""

    item_id: str  # deterministic: the same event read twice (replay, read-back) has the same id
    agent_id: str
    kind: str
    data: dict[str, Any]


class LiveState:
    """Every live call by id, bounded by count; folds one event at a time."""

    def __init__(
        self,
        *,
        max_calls: int = 5000,
        stale_call_s: float = 3600.0,
        ended_call_linger_s: float = 120.0,
        agent_alert_categories: tuple[str, ...] = ("compliance",),
    ) -> None:
        self.calls: OrderedDict[str, LiveCall] = OrderedDict()
        self.version = 0
        self.removed: deque[tuple[int, str]] = deque(maxlen=10_000)  # (version, call_id) gone from the wall
        # (version, call_id) of every change, so a stream finds what changed without scanning all calls
        self.touched: deque[tuple[int, str]] = deque(maxlen=MAX_TOUCHED)
        self._max_calls = max_calls
        self._stale_call_s = stale_call_s
        self._linger_s = ended_call_linger_s
        self._agent_alert_categories = frozenset(agent_alert_categories)

    def _bump(self) -> int:
        self.version += 1
        return self.version

    def _touch(self, call: LiveCall, version: int | None = None) -> int:
        call.version = self._bump() if version is None else version
        self.touched.append((call.version, call.call_id))
        return call.version

    def changed_since(self, version: int) -> list[LiveCall] | None:
        """Calls changed after `version`, oldest change first; None when the change log no longer
        reaches back that far (the caller sends a full snapshot instead)."""
        if len(self.touched) == self.touched.maxlen and self.touched[0][0] > version + 1:
            return None
        ids: dict[str, None] = {}
        for v, call_id in reversed(self.touched):
            if v <= version:
                break
            ids[call_id] = None
        return [self.calls[i] for i in reversed(ids) if i in self.calls]

    def _call(self, call_id: str, now: float) -> LiveCall:
        call = self.calls.get(call_id)
        if call is None:
            call = LiveCall(call_id=call_id, version=0, last_event_at=now)
            self.calls[call_id] = call
            self._touch(call)
            while len(self.calls) > self._max_calls:
                old_id, _ = self.calls.popitem(last=False)
                self.removed.append((self._bump(), old_id))
        call.last_event_at = now
        self.calls.move_to_end(call_id)
        return call

    def fold_transcript(self, event: TranscriptEvent, *, now: float) -> list[AgentItem]:
        match event:
            case TranscriptCallStarted():
                call = self._call(event.call_id, now)
                call.agent_id, call.queue, call.direction = event.agent_id, event.queue, event.direction
                call.source, call.started_at = event.source, event.started_at
                if call.ended_at is not None and call.ended_at < event.started_at:
                    call.ended_at = None  # the same call id started again (a replay)
                self._touch(call)
                started = self._agent_item(
                    call, f"start-{event.call_id}", "call.started", call.row(event.started_at)
                )
                held, call._unrouted = call._unrouted, []
                return [*started, *(replace(item, agent_id=call.agent_id) for item in held)]
            case TranscriptCallEnded():
                call = self._call(event.call_id, now)
                call.ended_at, call.end_reason = event.ended_at, event.reason
                self.removed.append((self._touch(call), call.call_id))
                return self._agent_item(call, f"end-{event.call_id}", "call.ended", {"call_id": call.call_id})
            case PartialSegment() | FinalSegment():
                self._fold_segment(self._call(event.call_id, now), event)
            case LegError():
                call = self._call(event.call_id, now)
                call.leg_errors.append({"leg": event.leg, "code": event.code, "at": event.at})
                del call.leg_errors[:-20]
                self._touch(call)
        return []

    def _fold_segment(self, call: LiveCall, event: PartialSegment | FinalSegment) -> None:
        line = call.lines.get(event.segment_id)
        is_final = isinstance(event, FinalSegment)
        if line is not None and line.final and not is_final:
            return  # a partial arriving after its final (redelivery) must not replace it
        if isinstance(event, PartialSegment):
            if line is not None and event.revision < line.revision:
                return
            if event.segment_id not in call._partial_seen:
                call._partial_seen.add(event.segment_id)
                call.latency["audio_to_partial"].append(
                    max(0.0, event.times.emitted_at - event.times.audio_captured_at)
                )
        elif line is None or not line.final:
            if event.times.speech_ended_at is not None:
                call.latency["speech_end_to_final"].append(
                    max(0.0, event.times.emitted_at - event.times.speech_ended_at)
                )
        version = self._bump()
        if line is None:
            line = Line(
                event.segment_id, event.leg, event.start_ms, event.end_ms, event.text, is_final, 0, version
            )
            call.lines[event.segment_id] = line
            while len(call.lines) > MAX_LINES_PER_CALL:
                dropped, _ = call.lines.popitem(last=False)
                call._partial_seen.discard(dropped)
        line.start_ms, line.end_ms, line.text, line.final = event.start_ms, event.end_ms, event.text, is_final
        line.revision = event.revision if isinstance(event, PartialSegment) else line.revision
        line.version = version
        self._touch(call, version)

    def fold_assist(self, event: AssistEvent, *, now: float) -> list[AgentItem]:
        call = self._call(event.call_id, now)
        items: list[AgentItem] = []
        match event:
            case Sentiment():
                call.sentiment_now[event.leg] = event.compound
                line = call.lines.get(event.segment_id)
                if event.final:
                    series = call.sentiment_series[event.leg]
                    series.append((event.segment_id, event.emitted_at, round(event.compound, 3)))
                    if line is not None:
                        line.sentiment = event.compound
                        line.version = self._bump()
                if event.leg == "customer":
                    items += self._agent_item(
                        call,
                        f"snt-{event.segment_id}-{event.revision}-{int(event.final)}",
                        "sentiment",
                        {"call_id": call.call_id, "compound": event.compound, "final": event.final},
                    )
            case AgentHint() | SupervisorAlert():
                if event.event_id not in call.marks:
                    mark = Mark(
                        event_id=event.event_id,
                        kind="hint" if isinstance(event, AgentHint) else "alert",
                        leg=event.leg,
                        segment_id=event.segment_id,
                        rule_id=event.rule_id,
                        rule_version=event.rule_version,
                        matched=event.matched,
                        matched_by=event.matched_by,
                        category=event.category,
                        before_turn_end=not event.on_final,
                        text=event.hint if isinstance(event, AgentHint) else event.message,
                        severity=event.severity if isinstance(event, SupervisorAlert) else None,
                        emitted_at=event.emitted_at,
                        version=0,
                        knowledge_title=event.knowledge_title if isinstance(event, AgentHint) else "",
                        knowledge_snippet=event.knowledge_snippet if isinstance(event, AgentHint) else "",
                    )
                    call.marks[event.event_id] = mark
                    while len(call.marks) > MAX_MARKS_PER_CALL:
                        call.marks.popitem(last=False)
                    call.latency["final_to_hint"].append(
                        max(0.0, event.emitted_at - event.segment_emitted_at)
                    )
                    mark.version = self._bump()
                    if isinstance(event, AgentHint) or event.category in self._agent_alert_categories:
                        items += self._agent_item(call, event.event_id, mark.kind, mark.view())
            case ComplianceState():
                call.compliance_version = event.rule_version
                call.compliance = tuple(step.model_dump(exclude={"v"}) for step in event.steps)
            case SentimentTrend():
                if event.scope in ("agent", "customer"):
                    call.trend[event.scope] = event.trend
            case ConversationMetrics():
                call.metrics = event.model_dump(exclude={"v", "type", "call_id"})
            case RedactionAudit():
                call.redactions += sum(event.counts.values())
        self._touch(call)
        return items

    def _agent_item(self, call: LiveCall, item_id: str, kind: str, data: dict[str, Any]) -> list[AgentItem]:
        item = AgentItem(item_id=item_id, agent_id=call.agent_id, kind=kind, data=data)
        if call.agent_id or call.started_at is not None:
            return [item]
        if kind == "sentiment" and call._unrouted and call._unrouted[-1].kind == "sentiment":
            call._unrouted[-1] = item  # of early sentiments in a row only the latest matters
        else:
            call._unrouted.append(item)
        del call._unrouted[:-MAX_UNROUTED]
        return []

    def expire(self, now: float) -> list[str]:
        """Drop ended calls after their linger and calls silent for too long; returns their ids."""
        gone = [
            call.call_id
            for call in self.calls.values()
            if now - call.last_event_at >= (self._linger_s if not call.active else self._stale_call_s)
        ]
        for call_id in gone:
            call = self.calls.pop(call_id)
            if call.active:
                self.removed.append((self._bump(), call_id))
        return gone

    def active_calls(self) -> list[LiveCall]:
        return [call for call in self.calls.values() if call.active and call.started_at is not None]

    def removed_since(self, version: int) -> list[str]:
        return [call_id for v, call_id in self.removed if v > version]
