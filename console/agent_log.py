"""Per-agent log of what the agent panel shows, resumable from the last event id a client saw.

Entries keep arrival order and their deterministic ids. A reconnect with Last-Event-ID gets
exactly the entries after that one: nothing lost, nothing repeated. An id this log no longer
holds (evicted, or never seen by this replica) gets a `reset`: the panel redraws from the
entries still held instead of silently missing some.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from console.live_state import AgentItem

MAX_ENTRIES_PER_AGENT = 500
MAX_AGENTS = 20_000


@dataclass(frozen=True)
class Entry:
    seq: int  # position in this agent's log, from 1
    item: AgentItem


@dataclass(frozen=True)
class Resume:
    entries: tuple[Entry, ...]
    reset: bool  # the given id was unknown: `entries` is all the log holds
    position: int  # seq of the last entry the client has once it has these (stream from here)


class AgentLog:
    def __init__(self, *, max_entries: int = MAX_ENTRIES_PER_AGENT, max_agents: int = MAX_AGENTS) -> None:
        self._max_entries = max_entries
        self._max_agents = max_agents
        self._logs: OrderedDict[str, deque[Entry]] = OrderedDict()
        self._seq_of: dict[str, dict[str, int]] = {}  # agent -> item id -> seq
        self._next_seq: dict[str, int] = {}

    def append(self, item: AgentItem) -> Entry | None:
        """Add an item; None when the agent's log already has it (a redelivered event)."""
        if not item.agent_id:
            return None
        ids = self._seq_of.setdefault(item.agent_id, {})
        if item.item_id in ids:
            return None
        log = self._logs.get(item.agent_id)
        if log is None:
            log = self._logs[item.agent_id] = deque()
            while len(self._logs) > self._max_agents:
                old, _ = self._logs.popitem(last=False)
                self._seq_of.pop(old, None)
                self._next_seq.pop(old, None)
        self._logs.move_to_end(item.agent_id)
        seq = self._next_seq.get(item.agent_id, 0) + 1
        self._next_seq[item.agent_id] = seq
        entry = Entry(seq=seq, item=item)
        log.append(entry)
        ids[item.item_id] = seq
        if len(log) > self._max_entries:
            ids.pop(log.popleft().item.item_id, None)
        return entry

    def last_seq(self, agent_id: str) -> int:
        return self._next_seq.get(agent_id, 0)

    def after(self, agent_id: str, seq: int) -> tuple[Entry, ...]:
        # Every agent stream asks after every fold: the common answer (nothing new) is O(1).
        if self._next_seq.get(agent_id, 0) <= seq:
            return ()
        log = self._logs.get(agent_id, ())
        return tuple(e for e in log if e.seq > seq)

    def resume(self, agent_id: str, last_event_id: str | None) -> Resume:
        """Entries after `last_event_id`; all entries held and `reset` when that id is unknown."""
        seq = self._seq_of.get(agent_id, {}).get(last_event_id) if last_event_id else 0
        entries = self.after(agent_id, seq or 0)
        position = entries[-1].seq if entries else (seq or 0)
        return Resume(entries, reset=seq is None, position=position)
