"""Per-call live figures for the assist policy: redaction audit, sentiment trend, conversation metrics. Pure.

`AssistPolicy` keeps one `LiveCall` per call and asks it, for every segment, whether to score a
partial (throttled, latest wins), and which trend, metrics and audit events the segment causes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyze.conversation import ConversationTracker
from analyze.events import ConversationMetrics, LegConversation, RedactionAudit, SentimentTrend
from analyze.redact import Redaction
from analyze.trends import CallTrend, PartialThrottle, TrendScope
from transcribe.events import FinalSegment, PartialSegment, TranscriptCallEnded

Segment = PartialSegment | FinalSegment
_SCOPES: tuple[TrendScope, ...] = ("agent", "customer", "call")


@dataclass(frozen=True, slots=True)
class LiveSettings:
    partial_interval_s: float = 0.5  # at most one sentiment score per turn per interval on partials
    rolling_window_ms: int = 60_000
    metrics_interval_ms: int = 15_000  # conversation metrics every this much call time
    min_interruption_overlap_ms: int = 500


class LiveCall:
    """The figures of one call that outlive a single segment."""

    def __init__(self, call_id: str, settings: LiveSettings, *, started_at: float | None = None) -> None:
        self.call_id = call_id
        self.started_at = started_at
        self._settings = settings
        self.trend = CallTrend(rolling_window_ms=settings.rolling_window_ms)
        self.conversation = ConversationTracker(
            min_interruption_overlap_ms=settings.min_interruption_overlap_ms
        )
        self._throttle = PartialThrottle(settings.partial_interval_s)
        self._next_metrics_ms = settings.metrics_interval_ms

    def to_dict(self) -> dict[str, object]:
        """What `from_dict` needs to carry on exactly where this call left off (analyze.call_state)."""
        return {
            "started_at": self.started_at,
            "next_metrics_ms": self._next_metrics_ms,
            "trend": self.trend.to_dict(),
            "conversation": self.conversation.to_dict(),
            "throttle": self._throttle.to_dict(),
        }

    @classmethod
    def from_dict(cls, call_id: str, settings: LiveSettings, data: dict[str, Any]) -> LiveCall:
        live = cls(call_id, settings, started_at=data["started_at"])
        live.trend = CallTrend.from_dict(data["trend"], rolling_window_ms=settings.rolling_window_ms)
        live.conversation = ConversationTracker.from_dict(
            data["conversation"], min_interruption_overlap_ms=settings.min_interruption_overlap_ms
        )
        live._throttle = PartialThrottle.from_dict(data["throttle"], settings.partial_interval_s)
        live._next_metrics_ms = int(data["next_metrics_ms"])
        return live

    @property
    def customer_trend(self) -> float | None:
        """The customer's trend (last quarter against the earlier ones): what alert conditions read."""
        return self.trend.summary("customer").trend

    def should_score(self, segment: Segment, *, final: bool) -> bool:
        return self._throttle.should_score(segment.segment_id, segment.times.emitted_at, final=final)

    def on_segment(
        self, segment: Segment, raw_text: str, *, final: bool, now: float
    ) -> list[ConversationMetrics | SentimentTrend]:
        """Record the turn's span and words; metrics and trends when call time passes the next mark.

        Periodic rather than per final: a dashboard needs a fresh figure every few seconds, not
        three more events per turn through the broker; alert conditions read `customer_trend`.
        """
        words = len(raw_text.split())  # the words spoken, before redaction folds a card into one
        self.conversation.observe(
            segment.leg, segment.segment_id, segment.start_ms, segment.end_ms, words, final=final
        )
        if self.conversation.elapsed_ms < self._next_metrics_ms:
            return []
        interval = self._settings.metrics_interval_ms
        self._next_metrics_ms = (self.conversation.elapsed_ms // interval + 1) * interval
        return [self.metrics(now=now), *(self._trend(scope, now=now) for scope in _SCOPES)]

    def on_sentiment(self, segment: Segment, compound: float, *, final: bool) -> None:
        self.trend.observe(
            segment.leg, segment.segment_id, segment.start_ms, segment.end_ms, compound, final=final
        )

    def on_end(self, event: TranscriptCallEnded, *, now: float) -> list[ConversationMetrics | SentimentTrend]:
        if self.started_at is not None:
            length_ms = round(max(0.0, event.ended_at - self.started_at) * 1000)
            self.conversation.extend_to(length_ms)
            self.trend.extend_to(length_ms)
        out: list[ConversationMetrics | SentimentTrend] = [self.metrics(now=now, call_ended=True)]
        out.extend(self._trend(scope, now=now, call_ended=True) for scope in _SCOPES)
        return out

    def metrics(self, *, now: float, call_ended: bool = False) -> ConversationMetrics:
        f = self.conversation.figures()
        return ConversationMetrics(
            call_id=self.call_id,
            elapsed_ms=f.elapsed_ms,
            talk_ms=f.talk_ms,
            non_talk_ms=f.non_talk_ms,
            longest_silence_ms=f.longest_silence_ms,
            overtalk_ms=f.overtalk_ms,
            interruptions=f.interruptions,
            agent=LegConversation(**_fields(f.agent)),
            customer=LegConversation(**_fields(f.customer)),
            call_ended=call_ended,
            emitted_at=now,
        )

    def _trend(
        self,
        scope: TrendScope,
        *,
        now: float,
        call_ended: bool = False,
    ) -> SentimentTrend:
        s = self.trend.summary(scope)
        q = s.quarters
        return SentimentTrend(
            call_id=self.call_id,
            scope=scope,
            quarters=(q[0], q[1], q[2], q[3]),
            trend=s.trend,
            rolling=s.rolling,
            rolling_window_ms=self.trend.rolling_window_ms,
            samples=s.samples,
            elapsed_ms=s.elapsed_ms,
            call_ended=call_ended,
            emitted_at=now,
        )


def audit_event(segment: FinalSegment, redaction: Redaction, *, now: float) -> RedactionAudit:
    return RedactionAudit(
        call_id=segment.call_id,
        leg=segment.leg,
        segment_id=segment.segment_id,
        counts=redaction.counts,
        segment_emitted_at=segment.times.emitted_at,
        emitted_at=now,
    )


def _fields(figures: object) -> dict[str, object]:
    return {name: getattr(figures, name) for name in LegConversation.model_fields if name != "v"}
