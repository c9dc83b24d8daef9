"""Debian chromium driven by Playwright (never a downloaded browser), and signing in through the page."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def chromium_missing() -> str | None:
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        return "Debian chromium is not installed (bash deploy/run.sh test installs it)"
    return None


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def page_of(
    browser: Browser, base_url: str, username: str | None, password: str
) -> AsyncIterator[Page]:
    """A fresh context (own cookies), signed in through the login page when `username` is given."""
    context: BrowserContext = await browser.new_context(
        base_url=base_url, viewport={"width": 1440, "height": 900}
    )
    try:
        page = await context.new_page()
        if username is not None:
            await page.goto("/login")
            await page.fill("#username", username)
            await page.fill("#password", password)
            await page.click("#signin")
            await page.wait_for_url(lambda url: "/login" not in url, timeout=10_000)
        yield page
    finally:
        await context.close()
