"""The console's HTTP API on a real socket, with the real broker and PostgreSQL: access, bad input,
live state from the topics, history and search, the agent stream and its resume."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from console.users import add_user
from store.models import AssistEvent, Call, Segment
from tests.console.live import (
    ConsoleServer,
    eventually,
    read_sse,
    send,
    serve_console,
    signed_in,
)
from tests.console.scripted import ScriptedCall

API_ROUTES = [
    "/api/me",
    "/api/live/calls",
    "/api/live/wall/stream",
    "/api/live/calls/c-1",
    "/api/live/calls/c-1/stream",
    "/api/live/calls/c-1/audio",
    "/api/agent/stream?agent=ava",
    "/api/history/calls",
    "/api/search?q=refund",
    "/api/calls/c-1",
]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def live_ids(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/api/live/calls")
    response.raise_for_status()
    return {row["call_id"] for row in response.json()["calls"]}


@pytest.mark.parametrize("path", API_ROUTES)
async def test_every_api_route_refuses_an_anonymous_request_with_401(
    console_server: ConsoleServer, path: str
):
    async with httpx.AsyncClient(base_url=console_server.url) as client:
        response = await client.get(path)
    assert response.status_code == 401
    assert response.json()["error"] in ("unauthenticated",)


async def test_sign_in_sets_an_httponly_strict_session_cookie_and_a_wrong_password_is_401(
    console_server: ConsoleServer, password: str
):
    async with httpx.AsyncClient(base_url=console_server.url) as client:
        bad = await client.post("/api/login", json={"username": "sam", "password": "not it at all"})
        assert bad.status_code == 401
        nobody = await client.post("/api/login", json={"username": "nobody", "password": password})
        assert nobody.status_code == 401 and nobody.json() == bad.json()
        good = await client.post("/api/login", json={"username": "sam", "password": password})
        assert good.status_code == 200
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
        me = (await client.get("/api/me")).json()
        assert (me["username"], me["role"], me["queues"]) == ("sam", "supervisor", ["billing", "billing-vip"])


async def test_the_cookie_is_secure_when_the_console_sits_behind_tls(
    bootstrap: str, users_path, password: str
):
    async with serve_console(bootstrap, users_path, secure_cookies=True) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            good = await client.post("/api/login", json={"username": "sam", "password": password})
    assert "secure" in good.headers["set-cookie"].lower()


async def test_a_state_changing_request_without_the_csrf_token_is_403(console_server: ConsoleServer):
    client = await signed_in(console_server.url, "root")
    async with client:
        csrf = client.headers.pop("X-CSRF-Token")
        refused = await client.post("/api/agent-token", json={"agent_id": "ava"})
        assert (refused.status_code, refused.json()["error"]) == (403, "csrf")
        client.headers["X-CSRF-Token"] = "forged"
        assert (await client.post("/api/logout", json={})).status_code == 403
        client.headers["X-CSRF-Token"] = csrf
        assert (await client.post("/api/agent-token", json={"agent_id": "ava"})).status_code == 200


async def test_a_sign_in_posted_from_another_site_is_refused(console_server: ConsoleServer, password: str):
    async with httpx.AsyncClient(base_url=console_server.url) as client:
        response = await client.post(
            "/api/login",
            json={"username": "sam", "password": password},
            headers={"Origin": "https://evil.example"},
        )
    assert response.status_code == 403


async def test_an_agent_sees_only_their_own_live_calls_and_a_supervisor_only_their_teams_queues(
    console_server: ConsoleServer, producer: AIOKafkaProducer
):
    ava_call = ScriptedCall(new_id("ava"), agent_id="ava", queue="billing")
    bob_call = ScriptedCall(new_id("bob"), agent_id="bob", queue="tech")
    await send(
        producer, ava_call.started(), bob_call.started(), ava_call.final("agent", 0, "Hello, billing.")
    )
    root = await signed_in(console_server.url, "root")
    ava = await signed_in(console_server.url, "ava")
    sam = await signed_in(console_server.url, "sam")
    async with root, ava, sam:
        await eventually(lambda: _has(root, {ava_call.call_id, bob_call.call_id}))
        assert ava_call.call_id in await live_ids(ava)
        assert bob_call.call_id not in await live_ids(ava)
        assert (await ava.get(f"/api/live/calls/{bob_call.call_id}")).status_code == 403
        assert (await ava.get(f"/api/live/calls/{bob_call.call_id}/stream")).status_code == 403
        own = await ava.get(f"/api/live/calls/{ava_call.call_id}")
        assert own.status_code == 200 and own.json()["lines"][0]["text"] == "Hello, billing."
        assert (await sam.get(f"/api/live/calls/{ava_call.call_id}")).status_code == 200
        assert (await sam.get(f"/api/live/calls/{bob_call.call_id}")).status_code == 403
        assert bob_call.call_id not in await live_ids(sam)
        # Listen-in is for supervisors: an agent is refused even on their own call.
        assert (await ava.get(f"/api/live/calls/{ava_call.call_id}/audio")).status_code == 403


async def _has(client: httpx.AsyncClient, ids: set[str]) -> bool:
    return ids <= await live_ids(client)


async def test_the_live_list_filters_by_queue_agent_alert_and_sentiment(
    console_server: ConsoleServer, producer: AIOKafkaProducer
):
    calm = ScriptedCall(new_id("calm"), agent_id="ava", queue="billing-vip")
    angry = ScriptedCall(new_id("angry"), agent_id="bob", queue="billing-vip")
    await send(
        producer,
        calm.started(),
        angry.started(),
        calm.sentiment("customer", 0, 0.6),
        angry.sentiment("customer", 0, -0.7),
        angry.alert(0, "escalation.supervisor", "manager", "Manager requested", severity="critical"),
    )
    async with await signed_in(console_server.url, "sam") as sam:

        async def ids(query: str) -> set[str]:
            response = await sam.get(f"/api/live/calls?queue=billing-vip&{query}")
            return {row["call_id"] for row in response.json()["calls"]}

        await eventually(lambda: _alerted(sam, angry.call_id))
        assert await ids("") == {calm.call_id, angry.call_id}
        assert await ids("has_alert=true") == {angry.call_id}
        assert await ids("sentiment_below=0") == {angry.call_id}
        assert await ids("agent=ava") == {calm.call_id}
        rows = (await sam.get("/api/live/calls?queue=billing-vip&sort=severity")).json()["calls"]
        assert rows[0]["call_id"] == angry.call_id and rows[0]["worst_severity"] == "critical"


async def _alerted(client: httpx.AsyncClient, call_id: str) -> bool:
    rows = (await client.get("/api/live/calls")).json()["calls"]
    return any(r["call_id"] == call_id and r["alerts"] for r in rows)


async def test_an_ended_call_leaves_the_live_list(console_server: ConsoleServer, producer: AIOKafkaProducer):
    call = ScriptedCall(new_id("short"), agent_id="ava")
    async with await signed_in(console_server.url, "root") as root:
        await send(producer, call.started())
        await eventually(lambda: _has(root, {call.call_id}))
        await send(producer, call.ended())
        await eventually(lambda: _gone(root, call.call_id))


async def _gone(client: httpx.AsyncClient, call_id: str) -> bool:
    return call_id not in await live_ids(client)


@pytest.mark.parametrize(
    ("query", "problem_param"),
    [
        ("q=" + "a" * 201, "q"),
        ("q=refund&q=again", "q"),
        ("q=refund&limit=100000", "limit"),
        ("q=refund&limit=-1", "limit"),
        ("q=refund&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "body"),
        ("q=refund&from=yesterday", "from"),
        ("q=refund&leg=robot", "leg"),
        ("q=refund&sql=1", "sql"),
        ("q=refund&agent=%00%27%3B", "agent"),
        ("q=" + "x" * 5000, "query"),
    ],
)
async def test_hostile_or_oversized_search_input_is_a_clear_400_and_nothing_of_it_reaches_the_log(
    console_server: ConsoleServer, caplog: pytest.LogCaptureFixture, query: str, problem_param: str
):
    caplog.set_level(logging.DEBUG)
    async with await signed_in(console_server.url, "root") as root:
        response = await root.get("/api/search?" + query)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request"
    assert body["problems"][0]["param"] == problem_param or problem_param == "body"
    # The console's own lines and the server's (the test client's lines are not the product's).
    logged = "\n".join(
        r.getMessage() + str(r.__dict__) for r in caplog.records if r.name.startswith(("console", "uvicorn"))
    )
    assert "Traceback" not in logged and "aaaaaaaaaa" not in logged and "xxxxxxxxxx" not in logged


async def test_bad_ids_and_unknown_calls_are_4xx(console_server: ConsoleServer):
    async with await signed_in(console_server.url, "root") as root:
        assert (await root.get("/api/live/calls/" + "x" * 300)).status_code == 400
        assert (await root.get("/api/live/calls/bad%20id")).status_code == 400
        assert (await root.get("/api/live/calls/no-such-call")).status_code == 404
        assert (await root.get("/api/calls/no-such-call")).status_code == 404
        assert (await root.get("/api/history/calls?sentiment_below=7")).status_code == 400
        assert (await root.get("/api/history/calls?compliance_missed=maybe")).status_code == 400
        assert (
            await root.post("/api/agent-token", content=b"{", headers={"content-type": "application/json"})
        ).status_code == 400
        assert (
            await root.post("/api/agent-token", content=b"{}", headers={"content-type": "text/plain"})
        ).status_code == 415
        assert (
            await root.post("/api/agent-token", json={"agent_id": "ava", "ttl_s": 10**9})
        ).status_code == 400


async def store_call(
    engine: AsyncEngine, call: ScriptedCall, lines: list[tuple[str, int, str, float]], **call_fields
):
    """Rows as the store writes them: the call, its final segments with sentiment, an alert."""
    started = datetime.fromtimestamp(call.t0, UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Call.__table__).values(
                call_id=call.call_id,
                started_at=started,
                ended_at=datetime.fromtimestamp(call.t0 + 60, UTC),
                agent_id=call.agent_id,
                queue=call.queue,
                direction="inbound",
                source="test",
                end_reason=call_fields.get("end_reason", "hangup"),
            )
        )
        for leg, start_ms, text, compound in lines:
            final = call.final(leg, start_ms, text)  # type: ignore[arg-type]
            await conn.execute(
                insert(Segment.__table__).values(
                    segment_id=final.segment_id,
                    call_id=call.call_id,
                    leg=leg,
                    start_ms=start_ms,
                    end_ms=start_ms + 1500,
                    text=text,
                    emitted_at=started,
                    sentiment_compound=compound,
                )
            )
        alert = call.alert(lines[0][1], "escalation.supervisor", "manager", "Manager requested")
        await conn.execute(
            insert(AssistEvent.__table__).values(
                event_id=alert.event_id,
                call_id=call.call_id,
                leg="customer",
                segment_id=alert.segment_id,
                kind="alert",
                rule_id=alert.rule_id,
                rule_version=alert.rule_version,
                on_final=False,
                matched=alert.matched,
                payload=alert.message,
                severity="warning",
                segment_emitted_at=started,
                emitted_at=started,
            )
        )


async def test_search_finds_stored_segments_with_highlighted_snippets_within_what_the_user_may_see(
    console_server: ConsoleServer, engine: AsyncEngine
):
    ava_call = ScriptedCall(new_id("hist-ava"), agent_id="ava", queue="billing", t0=time.time() - 3600)
    bob_call = ScriptedCall(new_id("hist-bob"), agent_id="bob", queue="tech", t0=time.time() - 1800)
    await store_call(engine, ava_call, [("customer", 0, "I was charged twice for the subscription", -0.5)])
    await store_call(
        engine, bob_call, [("customer", 0, "The router keeps dropping, I was charged anyway", -0.3)]
    )
    async with (
        await signed_in(console_server.url, "root") as root,
        await signed_in(console_server.url, "ava") as ava,
    ):
        hits = (await root.get("/api/search?q=charged")).json()["hits"]
        assert {h["call_id"] for h in hits} >= {ava_call.call_id, bob_call.call_id}
        hit = next(h for h in hits if h["call_id"] == ava_call.call_id)
        assert {"text": "charged", "hit": True} in hit["snippet"]
        assert "".join(p["text"] for p in hit["snippet"]) == "I was charged twice for the subscription"
        # Stemming: "charges" finds "charged"; websearch syntax never fails on odd input.
        assert ava_call.call_id in {
            h["call_id"] for h in (await root.get("/api/search?q=charges")).json()["hits"]
        }
        odd = await root.get("/api/search", params={"q": "'); DROP TABLE segments; -- \"unclosed OR -"})
        assert odd.status_code == 200
        mine = (await ava.get("/api/search?q=charged")).json()["hits"]
        assert {h["call_id"] for h in mine} == {ava_call.call_id}
        assert (await ava.get(f"/api/calls/{bob_call.call_id}")).status_code == 403
        stored = (await ava.get(f"/api/calls/{ava_call.call_id}")).json()
        assert stored["lines"][0]["text"] == "I was charged twice for the subscription"
        assert stored["marks"][0]["rule_id"] == "escalation.supervisor"


async def test_history_lists_past_calls_with_filters(console_server: ConsoleServer, engine: AsyncEngine):
    t0 = time.time() - 86_400 * 3
    sad = ScriptedCall(new_id("sad"), agent_id="ava", queue="billing", t0=t0)
    glad = ScriptedCall(new_id("glad"), agent_id="ava", queue="billing", t0=t0 + 60)
    await store_call(engine, sad, [("customer", 0, "this is terrible service", -0.8)], end_reason="transfer")
    await store_call(engine, glad, [("customer", 0, "thank you so much", 0.8)])
    window = "from=" + datetime.fromtimestamp(t0 - 1, UTC).isoformat().replace("+00:00", "Z")
    window += "&to=" + datetime.fromtimestamp(t0 + 120, UTC).isoformat().replace("+00:00", "Z")
    async with await signed_in(console_server.url, "sam") as sam:

        async def ids(query: str) -> list[str]:
            response = await sam.get(f"/api/history/calls?{window}&{query}")
            assert response.status_code == 200, response.text
            return [c["call_id"] for c in response.json()["calls"]]

        assert await ids("") == [glad.call_id, sad.call_id]  # newest first
        assert await ids("sentiment_below=0") == [sad.call_id]
        assert await ids("end_reason=transfer") == [sad.call_id]
        assert await ids("rule=escalation.supervisor&agent=ava") == [glad.call_id, sad.call_id]
        assert await ids("queue=tech") == []
        assert await ids("limit=1&offset=1") == [sad.call_id]


async def test_the_agent_stream_resumes_from_last_event_id_with_nothing_lost_and_nothing_repeated(
    console_server: ConsoleServer, producer: AIOKafkaProducer
):
    call = ScriptedCall(new_id("hints"), agent_id="ava")
    await send(
        producer, call.started(), call.hint(0, "retention.offer", "cancel", "Offer the loyalty discount")
    )
    ava = await signed_in(console_server.url, "ava")
    async with ava:
        async with ava.stream("GET", "/api/agent/stream") as response:
            assert response.status_code == 200
            first = await read_sse(response, until=lambda es: any(e.event == "hint" for e in es))
        delivered = [e.id for e in first if e.id]
        assert delivered[-1].startswith("evt-")
        # While disconnected: two more hints and a customer sentiment.
        await send(
            producer,
            call.hint(2000, "billing.refund", "refund", "Explain the refund timeline"),
            call.sentiment("customer", 2000, -0.4),
            call.hint(4000, "billing.dispute", "dispute", "Open a dispute ticket"),
        )
        headers = {"Last-Event-ID": delivered[-1]}
        async with ava.stream("GET", "/api/agent/stream", headers=headers) as response:
            second = await read_sse(
                response,
                until=lambda es: (
                    sum(e.event == "hint" for e in es) >= 2 and any(e.event == "sentiment" for e in es)
                ),
            )
        resumed = [e.id for e in second if e.id]
        assert not set(resumed) & set(delivered)
        assert [e.data["rule_id"] for e in second if e.event == "hint"] == [
            "billing.refund",
            "billing.dispute",
        ]
        assert next(e.data["compound"] for e in second if e.event == "sentiment") == -0.4
        assert second[0].event == "hello"  # not a reset: the id was known


async def test_a_panel_token_opens_only_that_agents_stream_and_an_expired_or_forged_one_is_401(
    console_server: ConsoleServer, producer: AIOKafkaProducer
):
    async with await signed_in(console_server.url, "root") as root:
        token = (await root.post("/api/agent-token", json={"agent_id": "bob", "ttl_s": 60})).json()["token"]
    call = ScriptedCall(new_id("panel"), agent_id="bob")
    await send(
        producer, call.started(), call.hint(0, "retention.offer", "cancel", "Offer the loyalty discount")
    )
    async with httpx.AsyncClient(base_url=console_server.url, timeout=10) as anon:
        async with anon.stream("GET", f"/api/agent/stream?token={token}") as response:
            assert response.status_code == 200
            events = await read_sse(
                response,
                until=lambda es: any(
                    e.event == "hint" and e.data["segment_id"] == call.hint(0, "r", "", "").segment_id
                    for e in es
                ),
            )
        assert events
        assert (await anon.get(f"/api/agent/stream?token={token}&agent=ava")).status_code == 403
        assert (
            await anon.get(f"/api/live/calls?token={token}")
        ).status_code == 401  # a panel token is not a session
        forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        refused = await anon.get(f"/api/agent/stream?token={forged}")
        assert (refused.status_code, refused.json()["error"]) == (401, "token_bad_signature")
        expired = console_server_signer(console_server).issue_panel("bob", now=time.time() - 7200, ttl_s=60)
        refused = await anon.get(f"/api/agent/stream?token={expired}")
        assert (refused.status_code, refused.json()["error"]) == (401, "token_expired")


def console_server_signer(server: ConsoleServer):
    from console.auth import Signer

    assert server.config.session_secret is not None
    return Signer(server.config.session_secret.get_secret_value().encode())


async def test_a_console_started_mid_call_shows_that_call_so_far(
    console_server: ConsoleServer, producer: AIOKafkaProducer, bootstrap: str, users_path
):
    call = ScriptedCall(new_id("mid"), agent_id="ava")
    await send(
        producer,
        call.started(),
        call.final("customer", 0, "I want to cancel my account."),
        call.alert(0, "churn.cancel", "cancel my account", "Churn risk", severity="critical"),
        call.partial("agent", 2000, "I can help with"),
    )
    async with serve_console(bootstrap, users_path) as late:
        async with await signed_in(late.url, "root") as root:
            await eventually(lambda: _has(root, {call.call_id}))
            detail = (await root.get(f"/api/live/calls/{call.call_id}")).json()
    assert [(line["text"], line["final"]) for line in detail["lines"]] == [
        ("I want to cancel my account.", True),
        ("I can help with", False),
    ]
    assert [(m["rule_id"], m["severity"]) for m in detail["marks"]] == [("churn.cancel", "critical")]


async def test_a_user_removed_from_the_file_loses_their_session(
    console_server: ConsoleServer, users_path, password: str
):
    add_user(users_path, "temp", password, "agent")
    # The console notices the changed file within about a second.
    client = await eventually(lambda: _sign_in_or_none(console_server.url, "temp"), deadline_s=5)
    async with client:
        assert (await client.get("/api/me")).status_code == 200
        from console.users import load_users, save_users

        users = load_users(users_path)
        save_users(
            users_path,
            users.model_copy(update={"users": tuple(u for u in users.users if u.username != "temp")}),
        )
        await eventually(lambda: _refused(client), deadline_s=5)


async def _refused(client: httpx.AsyncClient) -> bool:
    return (await client.get("/api/me")).status_code == 401


async def _sign_in_or_none(url: str, username: str):
    try:
        return await signed_in(url, username)
    except httpx.HTTPStatusError:
        return None


async def test_the_console_serves_its_metrics(bootstrap: str, users_path):
    import asyncio
    import urllib.request

    from deploy.runtime import free_port

    port = free_port()
    async with serve_console(bootstrap, users_path, metrics_address=f"127.0.0.1:{port}") as server:
        async with await signed_in(server.url, "root") as root:
            await root.get("/api/live/calls")

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return response.read().decode()

        text = await asyncio.to_thread(scrape)
    for name in (
        "callscope_console_feed_up 1.0",
        'callscope_console_http_requests_total{status="200"}',
        "callscope_console_live_calls",
        "callscope_console_agent_delivery_latency_seconds_bucket",
    ):
        assert name in text, name


async def test_repeated_wrong_passwords_are_throttled_with_429(console_server: ConsoleServer):
    async with httpx.AsyncClient(base_url=console_server.url) as client:
        answers = [
            (
                await client.post("/api/login", json={"username": "guesser", "password": f"guess {n}"})
            ).status_code
            for n in range(6)
        ]
    assert answers == [401, 401, 401, 401, 401, 429]
