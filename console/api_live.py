"""Live API: the wall (snapshot and stream), one call's live view, the agent stream, listen-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from console import listen, metrics, sse
from console.access import can_listen, can_open_agent_stream, can_see_call
from console.context import ApiError, Console
from console.live_state import SEVERITY_RANK, LiveCall
from console.params import LiveFilter, call_id_ok, parse_query

COALESCE_S = 0.05  # a burst of events becomes one update per stream


def _console(request: Request) -> Console:
    return request.app.state.console


def matches(row: dict[str, Any], f: LiveFilter) -> bool:
    if f.queue and row["queue"] != f.queue:
        return False
    if f.agent and row["agent_id"] != f.agent:
        return False
    if f.has_alert is not None and (row["alerts"] > 0) != f.has_alert:
        return False
    if f.sentiment_below is not None:
        now = row["sentiment"]["customer"]
        if now is None or now >= f.sentiment_below:
            return False
    return True


def sort_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    orders = {
        "duration": lambda r: -(r["duration_s"] or 0),
        "sentiment": lambda r: r["sentiment"]["customer"] if r["sentiment"]["customer"] is not None else 2,
        "alerts": lambda r: -r["alerts"],
        "severity": lambda r: (-SEVERITY_RANK.get(r["worst_severity"] or "", 0), -r["alerts"]),
        "agent": lambda r: r["agent_id"],
        "queue": lambda r: r["queue"],
    }
    return sorted(rows, key=orders[key])


def _visible_rows(console: Console, who: Any, calls: list[LiveCall], now: float) -> list[dict[str, Any]]:
    return [c.row(now) for c in calls if can_see_call(who, agent_id=c.agent_id, queue=c.queue)]


async def wall(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    f = parse_query(LiveFilter, request.query_params, request.scope["query_string"])
    now = console.clock()
    rows = [r for r in _visible_rows(console, who, console.hub.state.active_calls(), now) if matches(r, f)]
    return JSONResponse({"calls": sort_rows(rows, f.sort), "feed": console.hub.status.view(), "now": now})


async def wall_stream(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    state, changes = console.hub.state, console.hub.changes

    async def events() -> AsyncIterator[bytes]:
        metrics.STREAMS_OPEN.labels("wall").inc()
        try:
            version = state.version
            rows = _visible_rows(console, who, state.active_calls(), console.clock())
            yield sse.message(
                "snapshot",
                {"calls": rows, "feed": console.hub.status.view(), "now": console.clock()},
                retry_ms=1000,
            )
            status_version = console.hub.status_version
            while True:
                new = await changes.wait_after(version, sse.KEEPALIVE_S)
                if new == version:
                    yield sse.KEEPALIVE
                    continue
                await asyncio.sleep(COALESCE_S)
                changed = state.changed_since(version)
                if changed is None:  # this stream fell behind the change log: start it over
                    version = state.version
                    rows = _visible_rows(console, who, state.active_calls(), console.clock())
                    yield sse.message(
                        "snapshot", {"calls": rows, "feed": console.hub.status.view(), "now": console.clock()}
                    )
                    continue
                removed = set(state.removed_since(version))
                version = state.version
                now = console.clock()
                visible = [c for c in changed if can_see_call(who, agent_id=c.agent_id, queue=c.queue)]
                rows = [c.row(now) for c in visible if c.active and c.started_at is not None]
                removed |= {c.call_id for c in visible if not c.active}
                update: dict[str, Any] = {"calls": rows, "removed": sorted(removed), "now": now}
                if console.hub.status_version != status_version:
                    status_version = console.hub.status_version
                    update["feed"] = console.hub.status.view()
                if rows or removed or "feed" in update:
                    yield sse.message("update", update)
        finally:
            metrics.STREAMS_OPEN.labels("wall").dec()

    return sse.stream(events())


def _call_id(request: Request) -> str:
    call_id = request.path_params["call_id"]
    if not call_id_ok(call_id):
        raise ApiError(400, "bad_call_id", "call ids are 1-128 letters, digits and _.:@-")
    return call_id


async def live_call(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    call = console.live_call_for(request, who, _call_id(request))
    return JSONResponse(call.detail(console.clock()) | {"feed": console.hub.status.view()})


async def live_call_stream(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    call_id = _call_id(request)
    call = console.live_call_for(request, who, call_id)
    state, changes = console.hub.state, console.hub.changes

    async def events() -> AsyncIterator[bytes]:
        metrics.STREAMS_OPEN.labels("call").inc()
        try:
            version = state.version
            yield sse.message("snapshot", call.detail(console.clock()), retry_ms=1000)
            while True:
                new = await changes.wait_after(version, sse.KEEPALIVE_S)
                if new == version:
                    yield sse.KEEPALIVE
                    continue
                await asyncio.sleep(COALESCE_S)
                current = state.calls.get(call_id)
                if current is None:
                    yield sse.message("gone", {"call_id": call_id})
                    return
                if current.version > version:
                    yield sse.message("update", current.detail(console.clock(), since=version))
                version = state.version
        finally:
            metrics.STREAMS_OPEN.labels("call").dec()

    return sse.stream(events())


async def agent_stream(request: Request) -> Response:
    """Hints, agent-facing alerts and customer sentiment of one agent, resumable by event id."""
    console = _console(request)
    who = console.panel_or_session(request)
    agent_id = request.query_params.get("agent") or who.agent_id
    if not agent_id or not call_id_ok(agent_id):
        raise ApiError(400, "bad_agent", "name the agent (agent=...)")
    if not can_open_agent_stream(who, agent_id):
        raise ApiError(403, "forbidden", "not your stream")
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if last_id is not None and len(last_id) > 200:
        raise ApiError(400, "bad_last_event_id", "event ids are short")
    agents, changes = console.hub.agents, console.hub.changes

    async def events() -> AsyncIterator[bytes]:
        metrics.STREAMS_OPEN.labels("agent").inc()
        try:
            version = changes.version
            resume = agents.resume(agent_id, last_id)
            if resume.reset:
                yield sse.message("reset", {"reason": "unknown_last_event_id"}, retry_ms=1000)
            else:
                yield sse.message("hello", {"agent_id": agent_id}, retry_ms=1000)
            for entry in resume.entries:
                yield _agent_message(entry.item)
            position = resume.position
            while True:
                new = await changes.wait_after(version, sse.KEEPALIVE_S)
                timed_out, version = new == version, new
                fresh = agents.after(agent_id, position)
                for entry in fresh:
                    yield _agent_message(entry.item)
                if fresh:
                    position = fresh[-1].seq
                elif timed_out:
                    yield sse.KEEPALIVE
        finally:
            metrics.STREAMS_OPEN.labels("agent").dec()

    return sse.stream(events())


def _agent_message(item: Any) -> bytes:
    emitted = item.data.get("emitted_at")
    if isinstance(emitted, float):
        metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - emitted))
    return sse.message(item.kind, item.data, event_id=item.item_id)


async def listen_in(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    call_id = _call_id(request)
    call = console.live_call_for(request, who, call_id)
    if not can_listen(who, agent_id=call.agent_id, queue=call.queue):
        raise ApiError(403, "forbidden", "listen-in is for supervisors of this call's queue")
    if not call.active:
        raise ApiError(409, "call_ended", "the call has ended")
    frames = listen.listen(
        console.config.kafka_bootstrap,
        console.config.audio_topic,
        call_id,
        client_id=console.config.client_id,
    )

    async def body() -> AsyncIterator[bytes]:
        metrics.STREAMS_OPEN.labels("listen").inc()
        try:
            async for chunk in frames:
                yield chunk
        finally:
            metrics.STREAMS_OPEN.labels("listen").dec()
            await frames.aclose()

    return StreamingResponse(
        body(), media_type="application/octet-stream", headers={"Cache-Control": "no-store"}
    )


routes = [
    Route("/api/live/calls", wall),
    Route("/api/live/wall/stream", wall_stream),
    Route("/api/live/calls/{call_id}/stream", live_call_stream),
    Route("/api/live/calls/{call_id}/audio", listen_in),
    Route("/api/live/calls/{call_id}", live_call),
    Route("/api/agent/stream", agent_stream),
]
