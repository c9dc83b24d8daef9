"""Topic names and layout. Every topic is keyed by call_id so a call stays in one partition."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    audio: str = "callscope.audio.v1"
    transcripts: str = "callscope.transcripts.v1"
    assist: str = "callscope.assist.v1"
    deadletter: str = "callscope.deadletter.v1"

    def all(self) -> tuple[str, ...]:
        return (self.audio, self.transcripts, self.assist, self.deadletter)


TOPICS = Topics()
