"""The console in a real browser (Debian chromium): wall, call view, agent panel, search, access.

Events are produced onto the real topics directly; the console reads them with its own consumer.
The screenshots in docs/ come from here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.console.browser import DOCS, chromium, chromium_missing, page_of
from tests.console.live import PASSWORD, ConsoleServer, eventually, send, signed_in
from tests.console.scripted import ScriptedCall
from tests.console.test_api import store_call

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")
SHORT_MS = 5_000  # a deadline for the page to show what the topics carry (not a timing claim)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def row(page: Page, call_id: str):
    return page.locator(f'#rows tr[data-call-id="{call_id}"]')


async def test_sign_in_page_refuses_a_wrong_password_and_anonymous_pages_go_to_sign_in(
    console_server: ConsoleServer, browser: Browser
):
    async with page_of(browser, console_server.url, None, PASSWORD) as page:
        await page.goto("/wall")
        await page.wait_for_url("**/login?next=%2Fwall")
        await page.fill("#username", "sam")
        await page.fill("#password", "wrong password")
        await page.click("#signin")
        await expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
        await page.fill("#password", PASSWORD)
        await page.click("#signin")
        await page.wait_for_url("**/wall")
        await expect(page.locator("#who")).to_have_text("sam · supervisor")


async def test_the_wall_shows_a_new_call_and_drops_it_when_it_ends_and_filters_by_alert(
    console_server: ConsoleServer, browser: Browser, producer: AIOKafkaProducer
):
    calm = ScriptedCall(new_id("calm"), agent_id="ava", queue="billing")
    angry = ScriptedCall(new_id("angry"), agent_id="bob", queue="billing")
    async with page_of(browser, console_server.url, "sam", PASSWORD) as page:
        await page.goto("/wall")
        await expect(page.locator("#feed")).to_have_text("live")
        await send(producer, calm.started(), angry.started())
        await expect(row(page, calm.call_id)).to_be_visible(timeout=SHORT_MS)
        await expect(row(page, angry.call_id)).to_be_visible(timeout=SHORT_MS)
        await send(
            producer,
            angry.sentiment("customer", 0, -0.72),
            angry.alert(0, "legal.threat", "lawyer", "Legal threat", severity="critical"),
        )
        angry_row = row(page, angry.call_id)
        await expect(angry_row.locator(".badge.sev-critical")).to_have_text("1", timeout=SHORT_MS)
        await expect(angry_row.locator(".sval").first).to_have_text("-0.72")
        await page.check("#f-alert")
        await expect(row(page, calm.call_id)).to_have_count(0)
        await expect(row(page, angry.call_id)).to_be_visible()
        await page.uncheck("#f-alert")
        await page.fill("#f-sentiment", "-0.5")
        await expect(row(page, calm.call_id)).to_have_count(0)
        await page.fill("#f-sentiment", "")
        await send(producer, calm.ended())
        await expect(row(page, calm.call_id)).to_have_count(0, timeout=SHORT_MS)
        await expect(row(page, angry.call_id)).to_be_visible()
        await send(producer, angry.ended())


async def test_the_call_view_replaces_a_partial_by_its_final_in_place_and_shows_the_rule_behind_an_alert(
    console_server: ConsoleServer, browser: Browser, producer: AIOKafkaProducer
):
    call = ScriptedCall(new_id("view"), agent_id="ava", queue="billing")
    await send(producer, call.started(), call.final("agent", 0, "Thank you for calling, this is Ava."))
    async with page_of(browser, console_server.url, "sam", PASSWORD) as page:
        await page.goto(f"/calls/{call.call_id}")
        await expect(page.locator("#call-status")).to_have_text("live")
        await send(producer, call.partial("customer", 3000, "i want to speak to a"))
        segment = call.final("customer", 3000, "").segment_id
        line = page.locator(f'#lines [data-segment-id="{segment}"]')
        await expect(line).to_have_class("line leg-customer partial", timeout=SHORT_MS)
        await expect(line.locator(".text")).to_have_text("i want to speak to a")
        await send(
            producer,
            call.alert(3000, "escalation.supervisor", "speak to a manager", "Customer asks for a manager"),
            call.final("customer", 3000, "I want to speak to a manager right now."),
        )
        await expect(line).to_have_class("line leg-customer final", timeout=SHORT_MS)
        await expect(line.locator(".text")).to_have_text("I want to speak to a manager right now.")
        await expect(page.locator("#lines .line")).to_have_count(2)  # replaced, not appended
        mark = page.locator("#marks li.mark")
        await expect(mark.locator(".rule")).to_have_text("escalation.supervisor @ 2024-07-01")
        await expect(mark.locator(".matched")).to_have_text("speak to a manager")
        await expect(mark.locator(".badge.early")).to_have_text("before turn end")
        await send(producer, call.compliance(greeting="met", recording_disclosure="missed"), call.metrics())
        await expect(page.locator('#compliance li[data-item="recording_disclosure"]')).to_have_class(
            "cmp-missed", timeout=SHORT_MS
        )
        await expect(page.locator('#latency tr[data-stage="speech_end_to_final"] td').first).to_have_text(
            "300 ms"
        )
        await send(producer, call.ended())


async def test_an_agent_cannot_open_another_agents_call(
    console_server: ConsoleServer, browser: Browser, producer: AIOKafkaProducer
):
    bobs = ScriptedCall(new_id("bobs"), agent_id="bob", queue="billing")
    await send(producer, bobs.started(), bobs.final("customer", 0, "My card number is on file."))
    async with await signed_in(console_server.url, "root") as root:
        await eventually(lambda: _live(root, bobs.call_id))
    async with page_of(browser, console_server.url, "ava", PASSWORD) as page:
        await page.goto(f"/calls/{bobs.call_id}")
        await expect(page.locator("#call-error")).to_have_text("You may not open this call.")
        await expect(page.locator("#lines .line")).to_have_count(0)
    await send(producer, bobs.ended())


async def _live(client, call_id: str) -> bool:
    return (await client.get(f"/api/live/calls/{call_id}")).status_code == 200


async def test_the_agent_panel_shows_hints_and_after_a_dropped_connection_has_no_gap_and_no_repeat(
    console_server: ConsoleServer, browser: Browser, producer: AIOKafkaProducer
):
    async with page_of(browser, console_server.url, "root", PASSWORD) as admin:
        minted = await admin.evaluate(
            "cs.signedIn().then(() => cs.api('/api/agent-token', {method: 'POST', body: {agent_id: 'ava'}}))"
        )
    call = ScriptedCall(new_id("panel"), agent_id="ava", queue="billing")
    async with page_of(browser, console_server.url, None, PASSWORD) as panel:
        await panel.goto(minted["panel_url"])  # the iframe URL: a token, no password
        await expect(panel.locator("#conn")).to_have_text("live")
        await send(
            producer, call.started(), call.hint(0, "retention.offer", "cancel", "Offer the loyalty discount")
        )
        await expect(panel.locator('#items li[data-rule="retention.offer"]')).to_be_visible(timeout=SHORT_MS)
        await expect(panel.locator("#current-call")).to_contain_text(call.call_id)
        await panel.evaluate("window.callscopePanel.drop()")
        await send(
            producer,
            call.hint(2000, "billing.refund", "refund", "Explain the refund timeline"),
            call.sentiment("customer", 2000, -0.45),
            call.hint(4000, "billing.dispute", "dispute", "Open a dispute ticket"),
        )
        await panel.evaluate("window.callscopePanel.reconnect()")
        hints = panel.locator("#items li.hint")
        await expect(hints).to_have_count(3, timeout=SHORT_MS)
        await expect(panel.locator("#customer-sentiment")).to_have_text("-0.45")
        state = await panel.evaluate("window.callscopePanel.state()")
        assert state["duplicates"] == 0
        assert len(state["ids"]) == len(set(state["ids"])) == state["received"]
        assert [await h.get_attribute("data-rule") for h in await hints.all()] == [
            "billing.dispute",
            "billing.refund",
            "retention.offer",
        ]
    await send(producer, call.ended())


async def test_search_finds_a_stored_call_by_a_spoken_word_and_opens_its_view(
    console_server: ConsoleServer, browser: Browser, engine: AsyncEngine
):
    call = ScriptedCall(new_id("stored"), agent_id="ava", queue="billing", t0=time.time() - 7200)
    await store_call(
        engine,
        call,
        [
            ("customer", 0, "My parcel never arrived and I want a refund", -0.4),
            ("agent", 4000, "I can arrange the refund today", 0.3),
        ],
    )
    async with page_of(browser, console_server.url, "sam", PASSWORD) as page:
        await page.goto("/history")
        await expect(page.locator(f'#history-rows tr[data-call-id="{call.call_id}"]')).to_be_visible()
        await page.fill("#q", "parcel")
        await page.click("#search-form button")
        hit = page.locator(f'#hits li[data-call-id="{call.call_id}"]')
        await expect(hit.locator("mark")).to_have_text("parcel")
        await hit.locator("a").click()
        await page.wait_for_url(f"**/calls/{call.call_id}#*")
        await expect(page.locator("#call-status")).to_have_text("ended · hangup")
        await expect(page.locator("#lines .line.final")).to_have_count(2)
        await expect(page.locator("#lines .line.target .text")).to_have_text(
            "My parcel never arrived and I want a refund"
        )


async def test_screenshots_of_the_wall_and_the_call_view(
    console_server: ConsoleServer, browser: Browser, producer: AIOKafkaProducer
):
    now = time.time()
    floor = [
        (
            "CA7f3a91",
            "maria.lopez",
            "billing",
            "inbound",
            412,
            -0.64,
            -0.21,
            [("critical", "legal.threat")],
            "missed",
        ),
        ("CA2b88e0", "james.chen", "billing", "inbound", 95, 0.42, 0.55, [], "met"),
        (
            "CA91cd4e",
            "ava",
            "billing-vip",
            "inbound",
            731,
            -0.31,
            0.12,
            [("warning", "escalation.supervisor")],
            "pending",
        ),
        (
            "CA0e5512",
            "priya.n",
            "billing",
            "outbound",
            188,
            0.08,
            0.31,
            [("info", "competitor.mention")],
            "met",
        ),
        (
            "CA55aa10",
            "tom.baker",
            "billing-vip",
            "inbound",
            1290,
            -0.12,
            0.05,
            [("warning", "hold.long")],
            "pending",
        ),
        ("CA6d02fe", "bob", "billing", "inbound", 23, None, 0.6, [], "pending"),
    ]
    calls = []
    for call_id, agent, queue, direction, age_s, customer, agent_snt, alerts, compliance in floor:
        call = ScriptedCall(call_id, agent_id=agent, queue=queue, direction=direction, t0=now - age_s)
        events = [call.started()]
        if customer is not None:
            events += [call.sentiment("customer", 1000, customer), call.trend("customer", customer - 0.1)]
        events.append(call.sentiment("agent", 3000, agent_snt))
        for i, (severity, rule) in enumerate(alerts):
            events.append(call.alert(1000 + i, rule, rule.split(".")[1], rule, severity=severity))
        statuses = {"greeting": "met", "recording_disclosure": compliance, "identity_check": "met"}
        events.append(call.compliance(**statuses))
        calls.append(call)
        await send(producer, *events)

    detail = ScriptedCall("CA3e19c4", agent_id="maria.lopez", queue="billing", t0=now - 96)
    script = [
        ("agent", 0, "Thank you for calling Northwind billing, this is Maria. This call is recorded.", 0.36),
        ("customer", 5200, "Hi. I've been charged twice for my subscription this month.", -0.42),
        ("agent", 10400, "I'm sorry about that. Can I have your account number, please?", 0.1),
        ("customer", 14800, "It's four four seven one. I already called about this last week.", -0.2),
        ("agent", 21000, "Thank you. I can see two charges of nineteen ninety nine on the third.", 0.36),
        ("customer", 27500, "This is ridiculous. If it isn't fixed today I'll talk to my lawyer.", -0.75),
        ("agent", 34200, "I understand. I'm refunding the duplicate charge right now.", 0.2),
        ("customer", 40100, "Okay. How long does the refund take?", 0.0),
    ]
    events = [detail.started()]
    for leg, start_ms, text, snt in script:
        events += [detail.final(leg, start_ms, text), detail.sentiment(leg, start_ms, snt)]  # type: ignore[arg-type]
    events += [
        detail.alert(27500, "legal.threat", "lawyer", "Customer threatens legal action", severity="critical"),
        detail.alert(
            14800, "repeat.caller", "called about this last week", "Repeat contact", severity="warning"
        ),
        detail.hint(
            40100,
            "billing.refund_timeline",
            "how long does the refund take",
            "Refunds post in 3-5 business days; offer a confirmation email",
            knowledge=("Refund timelines", "Card refunds reach the customer in 3-5 business days."),
        ),
        detail.partial("agent", 45600, "it usually takes three to five business"),
        detail.compliance(
            greeting="met", recording_disclosure="met", identity_check="met", offer_survey="pending"
        ),
        detail.trend("customer", -0.28),
        detail.metrics(elapsed_ms=46_000),
    ]
    await send(producer, *events)
    DOCS.mkdir(exist_ok=True)
    async with page_of(browser, console_server.url, "root", PASSWORD) as page:
        await page.goto("/wall?sort=severity")
        for call in calls:
            await expect(row(page, call.call_id)).to_be_visible(timeout=SHORT_MS)
        await expect(row(page, "CA7f3a91").locator(".badge.sev-critical")).to_be_visible(timeout=SHORT_MS)
        await page.set_viewport_size({"width": 1280, "height": 520})
        await page.screenshot(path=str(DOCS / "console-wall.png"))
        await page.goto(f"/calls/{detail.call_id}")
        await expect(page.locator("#lines .line")).to_have_count(len(script) + 1, timeout=SHORT_MS)
        await expect(page.locator("#marks li.mark")).to_have_count(3, timeout=SHORT_MS)
        await expect(page.locator("#metrics tr")).to_have_count(7)
        await page.set_viewport_size({"width": 1440, "height": 900})
        await page.screenshot(path=str(DOCS / "console-call.png"), full_page=True)
    for call in [*calls, detail]:
        await send(producer, call.ended())
    assert (DOCS / "console-wall.png").stat().st_size > 10_000
    await asyncio.sleep(0)
