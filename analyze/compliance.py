"""Live compliance checklist of one call. Pure: call positions come from segments, not a clock.

A step is met when its words are heard on its leg in time: in a segment that starts within
`within_ms` of the call, and/or before any of `before_rules` fires. It is missed when its leg
moves past the deadline without it (a segment of that leg starts after `within_ms`), when one of
`before_rules` fires first, or, for a timed step, when the call ends. A step due only before
rules that never fired is `not_applicable` at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from analyze.events import ComplianceState, ComplianceStatus, ComplianceStep, SupervisorAlert, assist_event_id
from analyze.rule_model import ComplianceItem
from ingest.events import Leg


@dataclass(frozen=True, slots=True)
class Change:
    item: ComplianceItem
    status: ComplianceStatus
    at_ms: int


class ComplianceTracker:
    """The checklist's state for one call; feed it every scored segment, then the call's end."""

    __slots__ = ("_at", "_items", "_status")

    def __init__(self, items: Sequence[ComplianceItem]) -> None:
        self._items = tuple(items)
        self._status: dict[str, ComplianceStatus] = {i.id: "pending" for i in self._items}
        self._at: dict[str, int | None] = {i.id: None for i in self._items}

    @property
    def steps(self) -> tuple[ComplianceStep, ...]:
        return tuple(
            ComplianceStep(item_id=i.id, status=self._status[i.id], at_ms=self._at[i.id]) for i in self._items
        )

    def observe(
        self, *, leg: Leg, start_ms: int, heard: Collection[str], fired: Collection[str]
    ) -> list[Change]:
        """One segment of `leg` starting at `start_ms`: the steps heard in it, the rules it fired."""
        changes: list[Change] = []
        for item in self._items:
            if self._status[item.id] != "pending":
                continue
            late = item.within_ms is not None and start_ms > item.within_ms
            if item.id in heard and not late:
                changes.append(self._set(item, "met", start_ms))
            elif any(rule_id in fired for rule_id in item.before_rules):
                changes.append(self._set(item, "missed", start_ms))
            elif late and item.applies_to(leg):
                changes.append(self._set(item, "missed", item.within_ms or 0))
        return changes

    def end(self, *, at_ms: int) -> list[Change]:
        """The call ended at position `at_ms`: a timed step still pending is missed."""
        changes: list[Change] = []
        for item in self._items:
            if self._status[item.id] == "pending":
                status: ComplianceStatus = "missed" if item.within_ms is not None else "not_applicable"
                deadline = item.within_ms if item.within_ms is not None else at_ms
                changes.append(self._set(item, status, min(at_ms, deadline)))
        return changes

    def to_dict(self) -> dict[str, list[object]]:
        """Each step's status and position, by item id (analyze.call_state)."""
        return {i.id: [self._status[i.id], self._at[i.id]] for i in self._items}

    @classmethod
    def from_dict(cls, items: Sequence[ComplianceItem], data: dict[str, list[object]]) -> ComplianceTracker:
        """The checklist of `items` with the saved state of the steps it still has; new ones pending."""
        tracker = cls(items)
        for item in tracker._items:
            saved = data.get(item.id)
            if saved is not None:
                status, at_ms = saved
                tracker._status[item.id] = status  # type: ignore[assignment]
                tracker._at[item.id] = None if at_ms is None else int(at_ms)  # type: ignore[arg-type]
        return tracker

    def _set(self, item: ComplianceItem, status: ComplianceStatus, at_ms: int) -> Change:
        self._status[item.id], self._at[item.id] = status, at_ms
        return Change(item, status, at_ms)


def state_event(
    tracker: ComplianceTracker,
    changes: Sequence[Change],
    *,
    call_id: str,
    rule_version: str,
    emitted_at: float,
    call_ended: bool = False,
    segment_id: str = "",
    segment_emitted_at: float | None = None,
) -> ComplianceState:
    steps = tracker.steps
    digest = hashlib.sha256(
        "\x1f".join(f"{s.item_id}={s.status}" for s in steps).encode() + (b"\x1fend" if call_ended else b"")
    ).hexdigest()[:16]
    return ComplianceState(
        event_id=assist_event_id(call_id, f"compliance:{digest}", rule_version),
        call_id=call_id,
        rule_version=rule_version,
        steps=steps,
        changed=tuple(c.item.id for c in changes),
        call_ended=call_ended,
        segment_id=segment_id,
        segment_emitted_at=segment_emitted_at,
        emitted_at=emitted_at,
    )


def call_end_segment_id(call_id: str) -> str:
    """Stands in for a segment id on what happens at a call's end (a missed step found then)."""
    return f"{call_id}#end"


def miss_alert(
    change: Change,
    *,
    call_id: str,
    leg: Leg,
    segment_id: str,
    rule_version: str,
    segment_emitted_at: float,
    emitted_at: float,
    on_final: bool,
) -> SupervisorAlert:
    item = change.item
    return SupervisorAlert(
        event_id=assist_event_id(call_id, f"compliance:{item.id}", rule_version),  # once per call
        call_id=call_id,
        leg=item.leg if item.leg != "any" else leg,
        segment_id=segment_id,
        on_final=on_final,
        rule_id=item.id,
        rule_version=rule_version,
        matched="",
        matched_by="compliance",
        category="compliance",
        severity=item.severity,
        message=item.message,
        segment_emitted_at=segment_emitted_at,
        emitted_at=emitted_at,
    )
