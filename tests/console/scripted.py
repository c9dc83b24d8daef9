"""Builders of transcript and assist events for the console tests: calls that happen now."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from analyze.events import (
    AgentHint,
    ComplianceState,
    ComplianceStep,
    ConversationMetrics,
    LegConversation,
    Sentiment,
    SentimentTrend,
    SupervisorAlert,
    assist_event_id,
)
from ingest.events import Leg
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    segment_id,
)

RULES = "2024-07-01"


@dataclass
class ScriptedCall:
    """One call's events, stamped relative to `t0` (default: now)."""

    call_id: str
    agent_id: str = "ava"
    queue: str = "billing"
    direction: str = "inbound"
    t0: float = field(default_factory=time.time)

    def at(self, ms: int) -> float:
        return self.t0 + ms / 1000

    def started(self) -> TranscriptCallStarted:
        return TranscriptCallStarted(
            call_id=self.call_id,
            started_at=self.t0,
            agent_id=self.agent_id,
            queue=self.queue,
            direction=self.direction,  # type: ignore[arg-type]
            source="test",
        )

    def ended(self, ms: int = 60_000, reason: str = "hangup") -> TranscriptCallEnded:
        return TranscriptCallEnded(call_id=self.call_id, ended_at=self.at(ms), reason=reason)

    def times(self, end_ms: int, *, final: bool) -> StageTimes:
        return StageTimes(
            audio_captured_at=self.at(end_ms),
            audio_received_at=self.at(end_ms) + 0.01,
            emitted_at=self.at(end_ms) + (0.3 if final else 0.15),
            speech_ended_at=self.at(end_ms) if final else None,
        )

    def partial(
        self, leg: Leg, start_ms: int, text: str, revision: int = 0, end_ms: int | None = None
    ) -> PartialSegment:
        end = end_ms if end_ms is not None else start_ms + 800
        return PartialSegment(
            call_id=self.call_id,
            leg=leg,
            segment_id=segment_id(self.call_id, leg, start_ms),
            start_ms=start_ms,
            end_ms=end,
            text=text,
            revision=revision,
            times=self.times(end, final=False),
        )

    def final(self, leg: Leg, start_ms: int, text: str, end_ms: int | None = None) -> FinalSegment:
        end = end_ms if end_ms is not None else start_ms + 1500
        return FinalSegment(
            call_id=self.call_id,
            leg=leg,
            segment_id=segment_id(self.call_id, leg, start_ms),
            start_ms=start_ms,
            end_ms=end,
            text=text,
            confidence=0.9,
            times=self.times(end, final=True),
        )

    def sentiment(
        self, leg: Leg, start_ms: int, compound: float, *, final: bool = True, revision: int = 0
    ) -> Sentiment:
        return Sentiment(
            call_id=self.call_id,
            leg=leg,
            segment_id=segment_id(self.call_id, leg, start_ms),
            final=final,
            revision=revision,
            compound=compound,
            positive=max(compound, 0),
            negative=max(-compound, 0),
            neutral=1 - abs(compound),
            segment_emitted_at=self.at(start_ms + 1500) + 0.3,
            emitted_at=self.at(start_ms + 1500) + 0.32,
        )

    def hint(
        self,
        start_ms: int,
        rule_id: str,
        matched: str,
        text: str,
        *,
        on_final: bool = True,
        knowledge: tuple[str, str] = (
            "Retention offers",
            "Offer the loyalty discount before a cancellation.",
        ),
    ) -> AgentHint:
        seg = segment_id(self.call_id, "customer", start_ms)
        return AgentHint(
            event_id=assist_event_id(seg, rule_id, RULES),
            call_id=self.call_id,
            leg="customer",
            segment_id=seg,
            on_final=on_final,
            rule_id=rule_id,
            rule_version=RULES,
            matched=matched,
            segment_emitted_at=self.at(start_ms + 1500) + 0.3,
            emitted_at=self.at(start_ms + 1500) + 0.34,
            category="retention",
            hint=text,
            knowledge_title=knowledge[0],
            knowledge_snippet=knowledge[1],
        )

    def alert(
        self,
        start_ms: int,
        rule_id: str,
        matched: str,
        message: str,
        *,
        severity: str = "warning",
        category: str = "escalation",
        on_final: bool = False,
        leg: Leg = "customer",
    ) -> SupervisorAlert:
        seg = segment_id(self.call_id, leg, start_ms)
        return SupervisorAlert(
            event_id=assist_event_id(seg, rule_id, RULES),
            call_id=self.call_id,
            leg=leg,
            segment_id=seg,
            on_final=on_final,
            rule_id=rule_id,
            rule_version=RULES,
            matched=matched,
            segment_emitted_at=self.at(start_ms + 800) + 0.15,
            emitted_at=self.at(start_ms + 800) + 0.19,
            category=category,
            severity=severity,  # type: ignore[arg-type]
            message=message,
        )

    def compliance(self, **statuses: str) -> ComplianceState:
        steps = tuple(
            ComplianceStep(item_id=k, status=v, at_ms=1000 if v != "pending" else None)
            for k, v in statuses.items()
        )  # type: ignore[arg-type]
        return ComplianceState(
            event_id=f"cmp-{self.call_id}-{'-'.join(statuses.values())}",
            call_id=self.call_id,
            rule_version=RULES,
            steps=steps,
            changed=tuple(statuses),
            emitted_at=time.time(),
        )

    def trend(self, scope: str, trend: float) -> SentimentTrend:
        return SentimentTrend(
            call_id=self.call_id,
            scope=scope,  # type: ignore[arg-type]
            quarters=(0.2, 0.0, -0.2, -0.4),
            trend=trend,
            rolling=-0.3,
            rolling_window_ms=30_000,
            samples=4,
            elapsed_ms=20_000,
            emitted_at=time.time(),
        )

    def metrics(self, elapsed_ms: int = 20_000) -> ConversationMetrics:
        leg = LegConversation(
            talk_ms=6000,
            non_talk_ms=14_000,
            words=40,
            words_per_minute=150.0,
            interruptions=1,
            longest_turn_ms=3000,
        )
        return ConversationMetrics(
            call_id=self.call_id,
            elapsed_ms=elapsed_ms,
            talk_ms=12_000,
            non_talk_ms=8000,
            longest_silence_ms=2500,
            overtalk_ms=400,
            interruptions=2,
            agent=leg,
            customer=leg,
            emitted_at=time.time(),
        )
