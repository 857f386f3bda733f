"""The e2e helpers themselves, where a wrong helper would make a page test flake."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.browser import click_while_shown

pytestmark = [pytest.mark.browser]

# A banner whose button hides itself as the pointer arrives: what the lost-connection banner does
# when an automatic retry gets through between Playwright's visibility check and its click.
HIDES_ON_HOVER = """<h1 style="margin:0;font-size:40px">Title</h1>
<div id="notice"><button id="retry" style="font-size:40px">Retry now</button></div>
<script>
  const notice = document.getElementById("notice");
  document.getElementById("retry").addEventListener("mouseover", () => { notice.hidden = true; });
  document.getElementById("retry").addEventListener("click", () => { document.title = "clicked"; });
</script>"""


def test_click_while_shown_returns_quickly_when_the_control_goes_away(browser: Any) -> None:
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.set_content(HIDES_ON_HOVER)
    started = time.monotonic()
    assert click_while_shown(page, "#retry", timeout_ms=1000) is False
    assert time.monotonic() - started < 10, "it waited for the hidden control to come back"
    assert page.title() != "clicked"
    assert click_while_shown(page, "#retry") is False  # hidden: not even tried


def test_click_while_shown_clicks_a_control_that_stays(browser: Any) -> None:
    page = browser.new_page()
    page.set_content('<button id="retry" onclick="document.title = `clicked`">Retry now</button>')
    assert click_while_shown(page, "#retry") is True
    assert page.title() == "clicked"


def test_click_while_shown_still_fails_on_a_control_that_stays_covered(browser: Any) -> None:
    """A visible control something else covers is a broken page, not a banner that went away."""
    page = browser.new_page()
    page.set_content('<button id="retry">Retry now</button>'
                     '<div style="position:fixed;inset:0;background:rgba(0,0,0,.1)"></div>')
    with pytest.raises(PlaywrightTimeoutError):
        click_while_shown(page, "#retry", timeout_ms=500)
