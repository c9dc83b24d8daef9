"""Every console page carries the one shared top bar, put in where its page marks it."""

from __future__ import annotations

import pytest

from console.app import STATIC, TOPBAR_MARK, page_html


@pytest.mark.parametrize("name", ["wall.html", "call.html", "history.html"])
def test_each_page_gets_the_shared_top_bar_in_place_of_its_mark(name: str):
    raw = (STATIC / name).read_text()
    assert raw.count(TOPBAR_MARK) == 1
    html = page_html(name)
    assert TOPBAR_MARK not in html
    assert html.count('<header class="topbar">') == 1
    for link in ('href="/wall"', 'href="/history"', 'href="/agent"', 'id="signout"', 'id="feed"'):
        assert link in html
    # The bar sits right after <body>, before the page's own content.
    assert html.index("<body>") < html.index('<header class="topbar">') < html.index("<main")


@pytest.mark.parametrize("name", ["login.html", "agent.html"])
def test_pages_without_the_bar_are_served_as_written(name: str):
    assert page_html(name) == (STATIC / name).read_text()
