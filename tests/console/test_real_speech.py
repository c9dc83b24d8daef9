"""A replayed call of real speech through the whole pipeline, watched in the browser.

Broker, database and the three stages run for real (tests/e2e/running.py); the console runs in
this process. The call appears on the wall, its transcript grows live with partials replaced by
their finals, an alert names its rule and version, listen-in receives the audio, the agent panel
shows the hint, and once stored the call is found by a spoken word.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest
from playwright.async_api import expect

from analyze.rules import load_rules
from ingest.events import Codec
from ingest.replay import replay_call
from ingest.wavsource import OutputFormat
from store.queries import CallSummary
from tests.calls import standard_calls
from tests.console.browser import chromium, chromium_missing, page_of
from tests.console.live import PASSWORD, serve_console, signed_in
from tests.e2e.running import running_pipeline

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR"),
    pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or ""),
]

MULAW_8K = OutputFormat(Codec.MULAW, 8000)
LIVE_MS = 120_000  # Whisper on two shared cores: generous deadlines, not timing claims


def spoken_word(summary: CallSummary) -> str:
    """The longest plain word Whisper heard in the call (what a supervisor would remember)."""
    words = {w for s in summary.segments for w in re.findall(r"[A-Za-z]{5,}", s.text)}
    return max(sorted(words), key=len)


@pytest.fixture(scope="module")
def calls():
    try:
        return standard_calls()
    except FileNotFoundError as exc:  # espeak-ng, sox or Asterisk prompts: `deploy/run.sh test` installs them
        reason = f"test speech unavailable: {exc}"
        print(reason)
        pytest.skip(reason)


async def test_a_replayed_real_speech_call_is_watched_live_heard_hinted_and_found(
    tmp_path_factory, calls, users_path
):
    first, second = calls
    rules = load_rules()
    async with running_pipeline(tmp_path_factory.mktemp("console-e2e-logs")) as pipeline:
        database_url = pipeline.engine.url.render_as_string(hide_password=False)
        async with serve_console(pipeline.bootstrap, users_path, database_url=database_url) as console:
            async with await signed_in(console.url, "root") as root:
                token = (await root.post("/api/agent-token", json={"agent_id": "agent-7"})).json()["token"]
            async with (
                chromium() as browser,
                page_of(browser, console.url, "root", PASSWORD) as wall,
                page_of(browser, console.url, "root", PASSWORD) as view,
                page_of(browser, console.url, None, PASSWORD) as panel,
            ):
                await wall.goto("/wall")
                await panel.goto(f"/agent?token={token}")
                await expect(panel.locator("#conn")).to_have_text("live")
                live_call = dataclasses.replace(second.replay("e2e-console-live"), queue="billing")
                replaying = asyncio.create_task(
                    replay_call(pipeline.bootstrap, live_call, speed=1.0, fmt=MULAW_8K)
                )

                row = wall.locator('#rows tr[data-call-id="e2e-console-live"]')
                await expect(row).to_be_visible(timeout=LIVE_MS)
                await view.goto("/calls/e2e-console-live")
                await view.click("#listen")
                partial = view.locator("#lines .line.partial").first
                await expect(partial).to_be_visible(timeout=LIVE_MS)
                segment = await partial.get_attribute("data-segment-id")
                same_line = view.locator(f'#lines [data-segment-id="{segment}"]')
                await expect(same_line).to_have_attribute("data-final", "true", timeout=LIVE_MS)
                await expect(view.locator(f'#lines [data-segment-id="{segment}"]')).to_have_count(1)

                mark = view.locator('#marks li[data-rule="escalation-request"]')
                await expect(mark.locator(".rule")).to_have_text(
                    f"escalation-request @ {rules.version}", timeout=LIVE_MS
                )
                status = view.locator("#listen-status")
                await expect(status).to_contain_text("listening", timeout=LIVE_MS)
                assert int(await status.get_attribute("data-frames") or 0) > 0
                print(f"listen-in delay over real speech: {await status.get_attribute('data-delay-ms')} ms")

                await replaying
                await expect(row).to_have_count(0, timeout=LIVE_MS)  # the ended call leaves the wall

                # The first call says "cancel my account": the agent panel gets the retention hint.
                await replay_call(pipeline.bootstrap, first.replay("e2e-console-hint"), speed=0, fmt=MULAW_8K)
                await expect(panel.locator('#items li[data-rule="retention-cancel"]')).to_be_visible(
                    timeout=LIVE_MS
                )

                summary = await pipeline.wait_until_stored("e2e-console-live")
                word = spoken_word(summary)
                print(f"searching the stored call for the spoken word {word!r}")
                await view.goto(f"/history?q={word}")
                hit = view.locator('#hits li[data-call-id="e2e-console-live"]')
                await expect(hit.locator("mark").first).to_have_text(re.compile(word, re.I), timeout=10_000)
                await hit.locator("a").click()
                await expect(view.locator("#call-status")).to_contain_text("ended", timeout=10_000)
