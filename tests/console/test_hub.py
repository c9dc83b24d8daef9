"""The hub folds records into the live state and the agents' logs; a bad record is counted, not fatal."""

from __future__ import annotations

from console.agent_log import AgentLog
from console.changes import Changes
from console.feed import Hub
from console.live_state import LiveState
from tests.console.scripted import ScriptedCall


def hub() -> Hub:
    return Hub(LiveState(), AgentLog(), Changes())


def test_records_are_folded_and_hints_reach_the_agents_log():
    h = hub()
    call = ScriptedCall("c1", agent_id="ava")
    h.fold("transcripts", call.started().to_bytes(), now=0)
    h.fold("assist", call.hint(0, "retention.offer", "cancel", "Offer").to_bytes(), now=0)
    h.publish()
    assert [c.call_id for c in h.state.active_calls()] == ["c1"]
    assert [e.item.kind for e in h.agents.resume("ava", None).entries] == ["call.started", "hint"]
    assert h.changes.version == h.state.version


def test_a_malformed_record_or_a_folding_bug_skips_that_record_only(monkeypatch):
    h = hub()
    h.fold("transcripts", b"{not json", now=0)
    h.fold("assist", b'{"type": "assist.hint"}', now=0)

    def broken(event, *, now):
        raise KeyError("bug")

    monkeypatch.setattr(h.state, "fold_assist", broken)
    h.fold("assist", ScriptedCall("c1").sentiment("customer", 0, 0.1).to_bytes(), now=0)
    h.fold("transcripts", ScriptedCall("c2").started().to_bytes(), now=0)
    assert [c.call_id for c in h.state.active_calls()] == ["c2"]
