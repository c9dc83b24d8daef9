"""The agent's resumable log and the version counter streams wait on."""

from __future__ import annotations

from console.agent_log import AgentLog
from console.changes import Changes
from console.live_state import AgentItem


def item(n: int, agent: str = "ava") -> AgentItem:
    return AgentItem(item_id=f"evt-{n}", agent_id=agent, kind="hint", data={"n": n})


def test_resuming_from_the_last_seen_id_loses_nothing_and_repeats_nothing():
    log = AgentLog()
    for n in range(5):
        log.append(item(n))
    first = log.resume("ava", None)
    assert [e.item.item_id for e in first.entries] == [f"evt-{n}" for n in range(5)]
    for n in range(5, 8):
        log.append(item(n))
    again = log.resume("ava", "evt-4")
    assert not again.reset
    assert [e.item.item_id for e in again.entries] == ["evt-5", "evt-6", "evt-7"]
    assert again.position == log.last_seq("ava")


def test_resuming_at_the_newest_id_delivers_nothing_and_streams_from_there():
    log = AgentLog()
    log.append(item(1))
    resume = log.resume("ava", "evt-1")
    assert resume.entries == () and not resume.reset and resume.position == 1


def test_a_redelivered_item_is_logged_once():
    log = AgentLog()
    assert log.append(item(1)) is not None
    assert log.append(item(1)) is None
    assert len(log.resume("ava", None).entries) == 1


def test_an_unknown_last_event_id_resets_the_panel_with_what_is_held():
    log = AgentLog(max_entries=3)
    for n in range(6):
        log.append(item(n))
    resume = log.resume("ava", "evt-0")  # evicted
    assert resume.reset
    assert [e.item.item_id for e in resume.entries] == ["evt-3", "evt-4", "evt-5"]


def test_agents_have_separate_logs_and_items_without_an_agent_are_dropped():
    log = AgentLog()
    log.append(item(1, "ava"))
    log.append(item(2, "bob"))
    assert log.append(AgentItem("evt-3", "", "hint", {})) is None
    assert [e.item.item_id for e in log.resume("bob", None).entries] == ["evt-2"]


async def test_a_waiter_behind_the_current_version_returns_at_once():
    changes = Changes()
    changes.publish(3)
    assert await changes.wait_after(2, timeout_s=60) == 3
    changes.publish(2)  # never backwards
    assert changes.version == 3


async def test_a_waiter_wakes_on_publish():
    import asyncio

    changes = Changes()
    waiter = asyncio.create_task(changes.wait_after(0, timeout_s=60))
    await asyncio.sleep(0)  # let it start waiting (no time passes)
    changes.publish(1)
    assert await waiter == 1
