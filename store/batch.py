"""A consumed batch of rows, at most one per key, in key order, ready for one transaction. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from store.rows import (
    AssistRow,
    AuditRow,
    CallEndRow,
    CallStartRow,
    ComplianceRow,
    ComplianceRows,
    LegErrorRow,
    MetricsRow,
    Row,
    RuleVersionRow,
    SegmentRow,
    SentimentRow,
    TrendRow,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """The rows of one consumed batch, at most one per key, ready for one transaction."""

    call_starts: tuple[CallStartRow, ...] = ()
    call_ends: tuple[CallEndRow, ...] = ()
    segments: tuple[SegmentRow, ...] = ()
    sentiments: tuple[SentimentRow, ...] = ()
    assist_events: tuple[AssistRow, ...] = ()
    leg_errors: tuple[LegErrorRow, ...] = ()
    metrics: tuple[MetricsRow, ...] = ()
    trends: tuple[TrendRow, ...] = ()
    audits: tuple[AuditRow, ...] = ()
    compliance: tuple[ComplianceRow, ...] = ()
    rule_versions: tuple[RuleVersionRow, ...] = ()

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables().values())

    def tables(self) -> dict[str, tuple[Any, ...]]:
        return {
            "calls_started": self.call_starts,
            "calls_ended": self.call_ends,
            "segments": self.segments,
            "segment_sentiments": self.sentiments,
            "assist_events": self.assist_events,
            "leg_errors": self.leg_errors,
            "conversation_metrics": self.metrics,
            "sentiment_trends": self.trends,
            "redaction_audit": self.audits,
            "compliance_state": self.compliance,
            "rule_set_versions": self.rule_versions,
        }


@dataclass
class _Collector:
    call_starts: dict[str, CallStartRow] = field(default_factory=dict)
    call_ends: dict[str, CallEndRow] = field(default_factory=dict)
    segments: dict[str, SegmentRow] = field(default_factory=dict)
    sentiments: dict[str, SentimentRow] = field(default_factory=dict)
    assist_events: dict[str, AssistRow] = field(default_factory=dict)
    leg_errors: dict[tuple[str, str, str, datetime], LegErrorRow] = field(default_factory=dict)
    metrics: dict[tuple[str, int], MetricsRow] = field(default_factory=dict)
    trends: dict[tuple[str, str, int], TrendRow] = field(default_factory=dict)
    audits: dict[tuple[str, str], AuditRow] = field(default_factory=dict)
    compliance: dict[tuple[str, str, str], ComplianceRow] = field(default_factory=dict)
    rule_versions: dict[str, RuleVersionRow] = field(default_factory=dict)


def merge(rows: Iterable[Row]) -> Batch:
    """Deduplicate rows in consumption order.

    Latest wins for calls, segments, sentiment, metrics, trends, audits and compliance steps (a
    replayed or re-scored final replaces the stored one). First wins for assist events, as in the
    database: the first firing of a rule on a turn (often on a partial, before the turn ended) is
    the one kept.
    PostgreSQL also refuses one INSERT ... ON CONFLICT DO UPDATE touching a key twice.
    """
    c = _Collector()
    for row in rows:
        match row:
            case CallStartRow():
                c.call_starts[row.call_id] = row
            case CallEndRow():
                c.call_ends[row.call_id] = row
            case SegmentRow():
                c.segments[row.segment_id] = row
                if row.redaction_counts:
                    c.audits[(row.segment_id, "store")] = AuditRow(
                        row.segment_id, "store", row.call_id, row.leg, row.redaction_counts
                    )
            case SentimentRow():
                c.sentiments[row.segment_id] = row
            case AssistRow():
                c.assist_events.setdefault(row.event_id, row)
                c.rule_versions.setdefault(row.rule_version, RuleVersionRow(row.rule_version, row.emitted_at))
            case LegErrorRow():
                c.leg_errors[(row.call_id, row.leg, row.code, row.at)] = row
            case MetricsRow():
                c.metrics[(row.call_id, row.elapsed_ms)] = row
            case TrendRow():
                c.trends[(row.call_id, row.scope, row.elapsed_ms)] = row
            case AuditRow():
                c.audits[(row.segment_id, row.stage)] = row
            case RuleVersionRow():
                c.rule_versions[row.version] = row
            case ComplianceRows():
                for step in row.steps:
                    c.compliance[(step.call_id, step.rule_version, step.item_id)] = step
                if row.steps:
                    first = row.steps[0].emitted_at
                    c.rule_versions.setdefault(row.rule_version, RuleVersionRow(row.rule_version, first))
    # Key order, so that two workers upserting the same rows lock them in the same order.
    return Batch(
        call_starts=_sorted(c.call_starts),
        call_ends=_sorted(c.call_ends),
        segments=_sorted(c.segments),
        sentiments=_sorted(c.sentiments),
        assist_events=_sorted(c.assist_events),
        leg_errors=_sorted(c.leg_errors),
        metrics=_sorted(c.metrics),
        trends=_sorted(c.trends),
        audits=_sorted(c.audits),
        compliance=_sorted(c.compliance),
        rule_versions=_sorted(c.rule_versions),
    )


def _sorted(rows: dict[Any, T]) -> tuple[T, ...]:
    return tuple(rows[key] for key in sorted(rows))
