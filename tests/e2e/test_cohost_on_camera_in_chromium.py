"""Co-hosts on camera, end to end in real Chromium, local WebRTC mode (issue 13, R2.5): the seller
invites a buyer from the studio; the buyer's watch page offers "Join as co-host" at once (the
server's token_renew goes to that user only) and publishes camera and microphone; viewers, those
already watching and those who come later, see the seller's picture with the co-host's as a tile
beside it — the seller's connection is not disturbed; "Remove" in the studio stops the co-host's
publishing within seconds on every page while the seller's video plays on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import shot, sign_in, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_pages_in_chromium import go_live, new_page, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Size and two luminance samples 0.4 s apart of one video element: moving, non-black video.
TILE_STATS = """async (selector) => {
  const v = document.querySelector(selector);
  if (!v || !v.videoWidth) return null;
  const sample = () => { const c = document.createElement('canvas'); c.width = 32; c.height = 18;
    const g = c.getContext('2d'); g.drawImage(v, 0, 0, 32, 18);
    const d = g.getImageData(0, 0, 32, 18).data; let s = 0;
    for (let i = 0; i < d.length; i += 4) s += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    return { mean: s / (d.length / 4), data: Array.from(d) }; };
  const a = sample(); await new Promise(r => setTimeout(r, 400)); const b = sample();
  const moved = a.data.some((x, i) => Math.abs(x - b.data[i]) > 8);
  return { width: v.videoWidth, mean: a.mean, moved };
}"""

COHOST_TILE = '#tiles video[data-publisher^="host:cory:"]'


def picture(page: Any, selector: str) -> dict[str, Any] | None:
    stats = page.evaluate(TILE_STATS, selector)
    return stats if stats and stats["mean"] > 10 and stats["moved"] else None


def test_a_cohost_joins_on_camera_and_is_removed(browser: Any, onair_server: OnairServer, shots: Path) -> None:
    studio, stream_id = go_live(browser, onair_server, "Two hosts")
    early = new_page(browser)
    sign_in(early, onair_server.url, "vera", "buyer")
    early.goto(f"{onair_server.url}/watch/{stream_id}")
    wait_view(early, "playing", 30)

    cohost = new_page(browser)
    sign_in(cohost, onair_server.url, "cory", "buyer")
    cohost.goto(f"{onair_server.url}/watch/{stream_id}")
    wait_view(cohost, "playing", 30)
    assert cohost.is_hidden("#cohost-bar"), "no invitation yet"

    studio.fill("#cohost-form input[name=user]", "cory")
    studio.click("#cohost-form button[type=submit]")
    studio.wait_for_selector('#cohost-list li[data-user="cory"]')
    cohost.wait_for_selector("#cohost-join:not([hidden])", timeout=10_000)  # live, no reload
    cohost.click("#cohost-join")
    cohost.wait_for_selector("#cohost-bar[data-cohost=on-camera]")
    cohost.wait_for_function("() => document.querySelector('#tiles video[data-self]')?.videoWidth > 0")

    late = new_page(browser)
    sign_in(late, onair_server.url, "vince", "buyer")
    late.goto(f"{onair_server.url}/watch/{stream_id}")
    for viewer in (early, late):
        wait_view(viewer, "playing", 30)
        wait_until(lambda viewer=viewer: picture(viewer, COHOST_TILE), 30, f"the co-host's moving picture on {viewer}")
        assert picture(viewer, "#video"), "the seller's picture stays the main one"
        box = viewer.locator(COHOST_TILE).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, f"the tile is shown, not collapsed: {box}"
        assert viewer.evaluate("() => onair.media.peers.size") == 2
    shot(late, shots, "e2e-cohost-on-camera-viewer")
    shot(cohost, shots, "e2e-cohost-on-camera-cohost")
    seller_pc = early.evaluate("() => [...onair.media.peers.keys()].find(k => k.startsWith('host:sally:'))")
    assert seller_pc, "the early viewer kept its connection to the seller"

    studio.click('#cohost-list li[data-user="cory"] button')
    studio.wait_for_selector('#cohost-list li[data-user="cory"]', state="detached")
    cohost.wait_for_selector("#cohost-bar[data-cohost='']", timeout=10_000)
    assert "no longer a co-host" in (cohost.text_content("#cohost-text") or "")
    assert cohost.locator("#tiles [data-self]").count() == 0
    for viewer in (early, late):
        wait_until(lambda viewer=viewer: viewer.locator(COHOST_TILE).count() == 0, 15,
                   f"the co-host's tile gone on {viewer}")
        wait_view(viewer, "playing", 5)
        assert picture(viewer, "#video"), "the seller's video plays on"
    assert early.evaluate("() => [...onair.media.peers.keys()]") == [seller_pc]
