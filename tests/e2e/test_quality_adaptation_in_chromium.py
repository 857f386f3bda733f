"""Real quality adaptation in the default (local WebRTC) mode, in Chromium (issue 13, R6.3): a
viewer whose link turns poor receives a lower layer — the seller's browser scales the video it
sends to THAT viewer down (RTCRtpSender.setParameters: a quarter of the resolution, 250 kbit/s at
most), so its decoded resolution and received bitrate really drop while another viewer keeps full
quality; when the link is good again the layer comes back, after the hysteresis.

The poor link is forced through the page's own wiring: round-trip readings fed to the connection
manager's link grading and its "rtt" event, which the watch page turns into a layer through
VideoQuality's hysteresis (video_quality.js) — the same path a slow heartbeat takes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import sign_in, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_pages_in_chromium import go_live, new_page, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FEED_RTT = """(rttMs) => { onair.manager.link.record(rttMs); onair.manager.emit('rtt', rttMs); }"""

# Received video bitrate (kbit/s) over `ms`, from the viewer's connection to the seller.
BITRATE = """async (ms) => {
  const pc = onair.media.pc;
  const bytes = async () => { let b = 0; (await pc.getStats()).forEach(r => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') b += r.bytesReceived; }); return b; };
  const a = await bytes(); await new Promise(r => setTimeout(r, ms)); const b = await bytes();
  return (b - a) * 8 / ms;
}"""


# The seller's per-viewer video encodings: user -> scaleResolutionDownBy.
SCALES = """() => Object.fromEntries([...onair.publisher.peers].map(([id, peer]) => [id.split(':')[1],
  peer.pc.getSenders().find(s => s.track?.kind === 'video').getParameters().encodings[0]?.scaleResolutionDownBy ?? 1]))"""


def scales(studio: Any) -> dict[str, float]:
    return dict(studio.evaluate(SCALES))


def width(page: Any) -> int:
    return int(page.evaluate("() => document.querySelector('#video').videoWidth"))


def test_a_poor_link_lowers_that_viewers_video_only_and_it_comes_back(
    browser: Any, onair_server: OnairServer, shots: Path
) -> None:
    studio, stream_id = go_live(browser, onair_server, "Adaptive")
    viewers = []
    for user in ("pia", "quinn"):
        page = new_page(browser)
        sign_in(page, onair_server.url, user, "buyer")
        page.goto(f"{onair_server.url}/watch/{stream_id}")
        wait_view(page, "playing", 30)
        viewers.append(page)
    poor, steady = viewers
    source = int(studio.evaluate("() => document.querySelector('#preview').videoWidth"))
    start = wait_until(lambda: width(poor) > 0 and width(steady) > 0 and width(poor), 20, "video on both")
    time.sleep(2)
    start = max(start, width(poor))  # the sender's bandwidth estimate ramps resolution up first
    before = poor.evaluate(BITRATE, 2000)

    for _ in range(3):
        poor.evaluate(FEED_RTT, 600)  # degraded: over ONAIR_WEB_RTT_DEGRADED, under _POOR
    assert poor.text_content("#layer") == "low"
    # the seller's browser scaled the encoding for that viewer only …
    wait_until(lambda: scales(studio) == {"pia": 4, "quinn": 1}, 10, "the poor viewer's encoding scaled down")
    # … and that viewer decodes a quarter of the source (or less, if the encoder also adapts)
    low = wait_until(lambda: 0 < width(poor) <= min(source // 4, start // 2) and width(poor), 20,
                     f"the poor viewer's resolution to drop from {start} to a quarter of {source}")
    time.sleep(2)
    after = poor.evaluate(BITRATE, 3000)
    assert after <= 350, f"the low layer is capped at 250 kbit/s; received {after:.0f} (before {before:.0f})"
    assert width(steady) >= width(poor), "the other viewer keeps its quality"
    poor.screenshot(path=str(shots / "e2e-quality-low-viewer.png"))

    for _ in range(10):
        poor.evaluate(FEED_RTT, 20)  # good again: the layer comes back after the hysteresis
    assert poor.text_content("#layer") == "high"
    wait_until(lambda: scales(studio) == {"pia": 1, "quinn": 1}, 10, "the encoding back to full scale")
    wait_until(lambda: width(poor) > low, 30, "more than the low layer again")
    print({"source_width": source, "start_width": start, "low_width": low, "kbps_before": round(before), "kbps_low": round(after),
           "steady_width": width(steady), "recovered_width": width(poor)})
