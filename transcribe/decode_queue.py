"""Which decode requests run next: the pure policy behind the process-wide decode scheduler.

Every session may have finals waiting (each ended turn, never dropped, in order) and at most one
partial (latest wins: a newer partial replaces the waiting one, keeping its place in line, so a
session that keeps speaking is not sent to the back). A batch takes at most one request per
session and none from a session whose previous request is still decoding, which keeps each
session's results in submission order however many workers decode. Finals go first, then
urgent partials (a turn that has no text yet: the hints that fire on partials wait for it), then
the other partials, each oldest-waiting first.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
Kind = Literal["partial", "final"]


@dataclass(slots=True)
class DecodeRequest(Generic[T]):
    """One clip to decode for one session; `payload` is whatever the caller needs back (audio, a future)."""

    session: Hashable
    kind: Kind
    payload: T
    urgent: bool = False  # a partial ahead of the other partials (a turn's first text)
    waiting_since: int = field(default=0, compare=False)  # queue order, set by submit()


class DecodeQueue(Generic[T]):
    """Not thread-safe: the scheduler calls it under its lock."""

    def __init__(self) -> None:
        self._finals: dict[Hashable, deque[DecodeRequest[T]]] = {}
        self._partials: dict[Hashable, DecodeRequest[T]] = {}
        self._busy: set[Hashable] = set()
        self._order = itertools.count()

    def __len__(self) -> int:
        return sum(len(q) for q in self._finals.values()) + len(self._partials)

    def submit(self, request: DecodeRequest[T]) -> list[DecodeRequest[T]]:
        """Queue a request; returns the requests it supersedes (a waiting partial of the same session)."""
        superseded: list[DecodeRequest[T]] = []
        waiting = self._partials.pop(request.session, None)
        if waiting is not None:
            superseded.append(waiting)
        if request.kind == "final":
            request.waiting_since = next(self._order)
            self._finals.setdefault(request.session, deque()).append(request)
        else:
            request.waiting_since = waiting.waiting_since if waiting else next(self._order)
            self._partials[request.session] = request
        return superseded

    def promote(self, session: Hashable) -> bool:
        """Turn the session's waiting partial into its newest final (first in line, never replaced)."""
        partial = self._partials.pop(session, None)
        if partial is None:
            return False
        partial.kind = "final"
        self._finals.setdefault(session, deque()).append(partial)
        return True

    def ready(self, *, urgent_only: bool = False) -> bool:
        """Whether take() would return something."""
        return bool(self._heads(urgent_only))

    def take(self, max_items: int, *, urgent_only: bool = False) -> list[DecodeRequest[T]]:
        """The next batch: one head request per idle session, finals first, oldest first;
        `urgent_only`: finals and urgent partials only."""
        heads = self._heads(urgent_only)
        heads.sort(key=lambda r: (r.kind != "final", not r.urgent, r.waiting_since))
        batch = heads[: max(0, max_items)]
        for request in batch:
            self._remove(request)
            self._busy.add(request.session)
        return batch

    def _heads(self, urgent_only: bool) -> list[DecodeRequest[T]]:
        heads: list[DecodeRequest[T]] = []
        for session in {*self._finals, *self._partials} - self._busy:
            finals = self._finals.get(session)
            head = finals[0] if finals else self._partials[session]
            if not urgent_only or head.kind == "final" or head.urgent:
                heads.append(head)
        return heads

    def done(self, sessions: list[Hashable]) -> None:
        """The batch holding these sessions' requests has finished decoding."""
        self._busy.difference_update(sessions)

    def forget(self, session: Hashable) -> list[DecodeRequest[T]]:
        """A session closed: drop what it still has waiting and return it."""
        dropped = list(self._finals.pop(session, ()))
        partial = self._partials.pop(session, None)
        return [*dropped, partial] if partial else dropped

    def forget_all(self) -> list[DecodeRequest[T]]:
        """Shutting down: drop and return everything waiting."""
        return [r for session in {*self._finals, *self._partials} for r in self.forget(session)]

    def _remove(self, request: DecodeRequest[T]) -> None:
        if request.kind == "partial":
            del self._partials[request.session]
            return
        finals = self._finals[request.session]
        finals.popleft()
        if not finals:
            del self._finals[request.session]
