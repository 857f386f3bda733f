"""Reactions in real Chromium (issue 14): a viewer's taps show on their own page at once, reach
the other viewer as aggregates and the studio's reactions-per-minute; with prefers-reduced-motion
nothing floats, the counts still change. Screenshots go to `test-output/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.e2e.browser import shot, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_pages_in_chromium import PAGE_ERRORS, go_live, new_page, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def total(page: Any) -> int:
    return int(page.get_attribute("#reactions", "data-total") or 0)


def floating(page: Any) -> int:
    return int(page.locator(".reaction-float").count())


def test_reactions_from_one_viewer_appear_on_the_other_and_in_the_studio(
        browser: Any, onair_server: OnairServer, shots: Path) -> None:
    need(onair_server.has_realtime(), "this build has no realtime endpoint")
    studio, stream_id = go_live(browser, onair_server, "Reaction storm")
    tapper = new_page(browser)
    calm = new_page(browser, reduced_motion="reduce")
    for viewer in (tapper, calm):
        viewer.goto(f"{onair_server.url}/watch/{stream_id}")
        wait_view(viewer, "playing", 30)
        viewer.wait_for_selector("#reactions button[data-kind=heart]")
    wait_until(lambda: tapper.evaluate("() => globalThis.onair?.reactions && true"), 10, "the reactions panel")

    for kind in ["heart", "heart", "fire", "clap", "heart"]:
        tapper.click(f"#reactions button[data-kind={kind}]")
    assert floating(tapper) >= 1  # own taps float at once, before any aggregate arrives
    shot(tapper, shots, "reactions-1-tapper")

    wait_until(lambda: total(calm) == 5, 15, "the taps at the other viewer")
    assert calm.inner_text("#reactions button[data-kind=heart] .reaction-count") == "3"
    assert floating(calm) == 0  # prefers-reduced-motion: counts change, nothing moves
    shot(calm, shots, "reactions-2-other-viewer-reduced-motion")
    wait_until(lambda: total(studio) == 5, 15, "the taps in the studio")
    wait_until(lambda: studio.inner_text("#rpm") == "5", 5, "reactions per minute in the studio")
    shot(studio, shots, "reactions-3-studio")
    wait_until(lambda: total(tapper) == 5, 15, "the aggregates back at the tapper")
