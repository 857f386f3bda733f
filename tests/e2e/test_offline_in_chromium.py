"""End to end in real Chromium (issue 13, "Offline is not noticed"): the browser going offline is
shown within about a second on the viewer and the studio — an "offline" badge and a notice with a
countdown to the next try and "Retry now" — and the pages reconnect by themselves when the
network is back. The studio's notice tells the seller that viewers may not see their actions.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import shot, sign_in, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_pages_in_chromium import go_live, new_page, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def badge(page: Any) -> str:
    return str(page.get_attribute("#conn", "data-conn"))


def test_offline_is_shown_at_once_and_recovers(browser: Any, onair_server: OnairServer, shots: Path) -> None:
    studio, stream_id = go_live(browser, onair_server, "Offline drill")
    viewer = new_page(browser)
    sign_in(viewer, onair_server.url, "olga", "buyer")
    viewer.goto(f"{onair_server.url}/watch/{stream_id}")
    wait_view(viewer, "playing", 30)
    for page in (viewer, studio):
        wait_until(lambda page=page: badge(page) == "connected", 20, f"connected on {page.url}")

    for page in (viewer, studio):
        page.context.set_offline(True)
        started = time.monotonic()
        wait_until(lambda page=page: badge(page) == "offline" and page.is_visible("#notice"), 5,
                   f"offline shown on {page.url}")
        assert time.monotonic() - started < 2.0, "offline should show within about a second"
        text = page.text_content("#notice-text") or ""
        assert "offline" in text and re.search(r"Next try in \d+ s\.", text), text
        assert page.is_visible("#notice-retry")
    assert "viewers may not see" in (studio.text_content("#notice-text") or "")
    # the countdown moves
    first = int(re.search(r"Next try in (\d+) s", viewer.text_content("#notice-text") or "").group(1))  # type: ignore[union-attr]
    wait_until(lambda: int(re.search(r"Next try in (\d+) s", viewer.text_content("#notice-text") or "")
                           .group(1)) < first, 5, "the countdown to tick")  # type: ignore[union-attr]
    shot(viewer, shots, "e2e-offline-viewer")
    shot(studio, shots, "e2e-offline-studio")

    for page in (viewer, studio):
        page.context.set_offline(False)
    for page in (viewer, studio):
        wait_until(lambda page=page: badge(page) == "connected" and not page.is_visible("#notice"), 15,
                   f"reconnected by itself on {page.url}")
    wait_view(viewer, "playing", 30)
