"""Media failures before the first frame, in real Chromium, local WebRTC mode (issue 13: "A
media failure before the first frame shows 'Connecting…' forever"). Each failure has its own
visible reason and a way out:

- the seller's camera refused: the studio says so, with "Try again", before and after going live;
- video that does not start (here: a negotiation that never completes) turns into "Video
  unavailable" with the reason after ONAIR_WEB_MEDIA_TIMEOUT, with "Try again";
- the local mode's viewer limit: the extra viewer is told the stream is full and gets in by
  itself when a place frees up (a leaving viewer says "bye", so that is at once).
The Agora cases (unreachable, token) are in test_agora_sdk_in_chromium.py and the node tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import shot, sign_in, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_pages_in_chromium import new_page, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MEDIA_TIMEOUT = 5

# What the browser does when the user (or a policy) refuses the camera, switchable by the test.
DENY_CAMERA = """(() => {
  window.__denyCamera = true;
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c) => window.__denyCamera
    ? Promise.reject(new DOMException("Permission denied", "NotAllowedError")) : real(c);
})()"""

# A negotiation that never completes: the offer is never applied, so no frame ever comes.
STUCK_NEGOTIATION = """(() => {
  RTCPeerConnection.prototype.setRemoteDescription = () => new Promise(() => {});
})()"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    tmp = tmp_path_factory.mktemp("onair-media-failures")
    (tmp / "data").mkdir()
    instance = OnairServer(tmp / "data", tmp / "onair.log", env={
        "ONAIR_WEB_MEDIA_TIMEOUT": str(MEDIA_TIMEOUT), "ONAIR_WEB_LOCAL_MAX_VIEWERS": "1",
    })
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def viewer_page(browser: Any, server: OnairServer, user: str, stream_id: str, init: str | None = None) -> Any:
    page = new_page(browser)
    if init:
        page.add_init_script(init)
    sign_in(page, server.url, user, "buyer")
    page.goto(f"{server.url}/watch/{stream_id}")
    return page


def test_each_media_failure_shows_its_reason_and_a_way_out(browser: Any, server: OnairServer, shots: Path) -> None:
    # The camera refused: said at once, with a retry that works once access is allowed.
    studio = new_page(browser)
    studio.add_init_script(DENY_CAMERA)
    sign_in(studio, server.url, "sally", "seller")
    studio.fill("#go-live-form input[name=title]", "Failure drill")
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    stream_id = studio.url.rsplit("/", 1)[1]
    studio.wait_for_selector("#sending[data-sending=failed]")
    assert "access was refused" in (studio.text_content("#sending-text") or "")
    assert studio.is_visible("#sending-retry")
    studio.screenshot(path=str(shots / "e2e-camera-refused-studio.png"), full_page=True)  # the "Video:" line is below the fold
    studio.wait_for_selector("#start:not([disabled])")
    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    assert studio.text_content("#status") == "live — no video yet"
    assert studio.get_attribute("#sending", "data-sending") == "failed", "the camera problem stays shown"
    studio.evaluate("() => { window.__denyCamera = false; }")
    studio.click("#sending-retry")
    studio.wait_for_selector("#sending[data-sending=on]")
    studio.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    assert studio.text_content("#status") == "live"

    # Video that never starts: an error with its reason after the first-frame deadline.
    stuck = viewer_page(browser, server, "stuck", stream_id, STUCK_NEGOTIATION)
    wait_view(stuck, "unavailable", MEDIA_TIMEOUT + 20)
    assert stuck.get_attribute("#player", "data-failure") == "timeout"
    assert "did not start in time" in (stuck.text_content("#overlay-text") or "")
    assert stuck.text_content("#retry") == "Try again"
    stuck.click("#retry")
    wait_view(stuck, "connecting", 5)
    wait_view(stuck, "unavailable", MEDIA_TIMEOUT + 20)
    stuck.goto("about:blank")  # leaving says "bye": the seller's only place is free again

    # The viewer limit (1 here): the second viewer is told, and gets in when the first leaves.
    first = viewer_page(browser, server, "first", stream_id)
    wait_view(first, "playing", 30)
    second = viewer_page(browser, server, "second", stream_id)
    wait_view(second, "unavailable", 30)
    assert second.get_attribute("#player", "data-failure") == "viewer-limit"
    assert "full right now" in (second.text_content("#overlay-text") or "")
    shot(second, shots, "e2e-viewer-limit")
    first.goto("about:blank")
    wait_view(second, "playing", 30)
    wait_until(lambda: second.get_attribute("#player", "data-failure") == "", 5, "the failure cleared")
