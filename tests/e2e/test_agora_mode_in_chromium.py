"""Agora mode in real Chromium with a stub of the Web SDK's documented interface.

The server has Agora credentials, so the pages load the SDK from Agora's CDN; Playwright answers
that CDN request with a stub of the SDK's interface (tests/web/support/stub_agora.mjs) whose
remote video track plays a moving canvas into the container it is given. Everything else is
real: the pages, the token endpoints (AccessToken2 for this stream's channel), the viewer's state
machine, and the pixels sampled from the video.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import moving_picture, shot, sign_in, view_of, wait_until, wait_view
from tests.e2e.conftest import OnairServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "0123456789abcdef0123456789abcdef"
CERTIFICATE = "fedcba9876543210fedcba9876543210"

# The stub as a classic script: what `<script src=AgoraRTC_N-x.js>` would define, a global.
SDK = re.sub(r"^export ", "", (ROOT / "tests/web/support/stub_agora.mjs").read_text(), flags=re.M) + """
function movingCanvasVideo(el) {
  const canvas = document.createElement("canvas");
  canvas.width = 320; canvas.height = 180;
  const g = canvas.getContext("2d");
  let t = 0;
  setInterval(() => {
    t += 1;
    if (window.__stubBlack) { g.fillStyle = "#000"; g.fillRect(0, 0, 320, 180); return; }
    g.fillStyle = "#3a6"; g.fillRect(0, 0, 320, 180);
    g.fillStyle = "#fd4"; g.fillRect((t * 7) % 320, 40, 60, 100);
  }, 40);
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  video.style.cssText = "position:absolute;inset:0;width:100%;height:100%;object-fit:contain";
  video.srcObject = canvas.captureStream(25);
  el.append(video);
  video.play();
}
window.AgoraRTC = createStubAgora({
  publishersInChannel: [{ user: { uid: 4242 }, mediaType: "video" }, { user: { uid: 4242 }, mediaType: "audio" }],
  onPlay: (track, el) => { if (el instanceof Element) movingCanvasVideo(el); },
});
"""


@pytest.fixture(scope="module")
def agora_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    tmp = tmp_path_factory.mktemp("onair-agora")
    (tmp / "data").mkdir()
    server = OnairServer(tmp / "data", tmp / "onair.log",
                         env={"ONAIR_AGORA_APP_ID": APP_ID, "ONAIR_AGORA_APP_CERTIFICATE": CERTIFICATE})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def agora_page(browser: Any) -> Any:
    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.route("https://download.agora.io/**",
               lambda route: route.fulfill(body=SDK, content_type="application/javascript"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def calls(page: Any, name: str) -> list[list[Any]]:
    """The stub SDK's recorded calls named ``name``; none while the page has not loaded it."""
    return page.evaluate(f"""() => typeof AgoraRTC === 'undefined' ? [] :
        AgoraRTC.calls.filter(c => c[0] === {name!r})
        .map(c => c.map(x => (x instanceof Element ? 'ELEMENT' : x)))""")


def test_agora_mode_studio_publishes_and_viewer_plays_with_real_tokens(
    browser: Any, agora_server: OnairServer, shots: Path
) -> None:
    studio = agora_page(browser)
    sign_in(studio, agora_server.url, "sally", "seller")
    studio.fill("#go-live-form input[name=title]", "Agora drop")
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    stream_id = studio.url.rsplit("/", 1)[1]
    studio.wait_for_selector("#start:not([disabled])")
    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    wait_until(lambda: calls(studio, "publish"), 15, "the studio to publish")
    assert calls(studio, "createClient")[0][1] == {"mode": "live", "codec": "vp8", "role": "host"}
    assert calls(studio, "enableDualStream")
    [_, app_id, channel, token, uid] = calls(studio, "join")[0]
    assert app_id == APP_ID and token.startswith("007") and stream_id in channel and isinstance(uid, int)
    shot(studio, shots, "agora-studio-live")

    viewer = agora_page(browser)
    viewer.goto(f"{agora_server.url}/watch/{stream_id}")
    wait_view(viewer, "playing")
    stats = moving_picture(viewer)
    assert stats["std"] > 5, stats
    shot(viewer, shots, "agora-viewer-playing")
    assert calls(viewer, "createClient")[0][1] == {"mode": "live", "codec": "vp8", "role": "audience"}
    [_, v_app, v_channel, v_token, _v_uid] = calls(viewer, "join")[0]
    assert (v_app, v_channel) == (APP_ID, channel), "the viewer joined another stream's channel"
    assert v_token.startswith("007") and v_token != token
    assert [c[3] for c in calls(viewer, "play") if c[2] == "video"] == ["ELEMENT"]

    # Playback telemetry judges the SDK's own <video>: a first frame, then a black picture.
    telemetry_kinds = "() => [...(onair.telemetry.queue ?? [])].map(e => e.kind + ':' + (e.problem ?? ''))"
    wait_until(lambda: "first_frame:" in viewer.evaluate(telemetry_kinds) or viewer.evaluate("onair.telemetry.sent"),
               15, "the viewer's first frame in Agora mode")
    viewer.evaluate("() => { window.__stubBlack = true; }")
    wait_until(lambda: "video_problem:black" in viewer.evaluate(telemetry_kinds), 20,
               "the black picture seen in the SDK's video")
    viewer.evaluate("() => { window.__stubBlack = false; }")

    # The SDK warns 30 s before expiry: a fresh token from onair goes to renewToken.
    viewer.evaluate("() => AgoraRTC.clients[0].fire('token-privilege-will-expire')")
    renewed = wait_until(lambda: calls(viewer, "renewToken"), 10, "renewToken")
    assert renewed[0][1].startswith("007") and renewed[0][1] != v_token

    # A poor network for two readings: the viewer asks for the publisher's low stream.
    viewer.evaluate("""async () => { for (let i = 0; i < 2; i++)
        await AgoraRTC.clients[0].fire('network-quality', { downlinkNetworkQuality: 4 }); }""")
    assert [ "setRemoteVideoStreamType", 4242, 1] in calls(viewer, "setRemoteVideoStreamType")
    assert viewer.text_content("#layer") == "low"

    # A co-host on camera (another uid publishing): its own tile, gone when it unpublishes.
    viewer.evaluate("() => AgoraRTC.clients[0].fire('user-published', { uid: 5151 }, 'video')")
    viewer.wait_for_function("""() => document.querySelector('#tiles div[data-publisher="agora:5151"] video')?.videoWidth > 0""")
    assert viewer.locator('[data-agora] video').count() == 1, "the seller's picture stays alone in the main box"
    viewer.evaluate("() => AgoraRTC.clients[0].fire('user-unpublished', { uid: 5151 }, 'video')")
    viewer.wait_for_selector('#tiles div[data-publisher="agora:5151"]', state="detached")
    assert view_of(viewer) == "playing"

    # A co-host on camera in Agora mode: invited from the studio, "Join as co-host" on the watch
    # page publishes with a publisher token of its own for the same channel.
    cohost = agora_page(browser)
    sign_in(cohost, agora_server.url, "cory", "buyer")
    cohost.goto(f"{agora_server.url}/watch/{stream_id}")
    wait_view(cohost, "playing")
    studio.fill("#cohost-form input[name=user]", "cory")
    studio.click("#cohost-form button[type=submit]")
    cohost.wait_for_selector("#cohost-join:not([hidden])", timeout=10_000)
    cohost.click("#cohost-join")
    cohost.wait_for_selector("#cohost-bar[data-cohost=on-camera]")
    hosts = [c for c in calls(cohost, "createClient") if c[1]["role"] == "host"]
    assert hosts, "the co-host joined as a host"
    assert calls(cohost, "publish")[-1][1] == ["audio", "video"]
    [_, c_app, c_channel, c_token, _c_uid] = calls(cohost, "join")[-1]
    assert (c_app, c_channel) == (APP_ID, channel) and c_token.startswith("007") and c_token not in (token, v_token)
    studio.click('#cohost-list li[data-user="cory"] button')
    cohost.wait_for_selector("#cohost-bar[data-cohost='']", timeout=10_000)
    assert calls(cohost, "leave"), "removed: the co-host left the channel as a publisher"

    studio.once("dialog", lambda dialog: dialog.accept())
    studio.click("#end")
    wait_view(viewer, "ended")
    assert calls(viewer, "leave"), "the viewer left the Agora channel when the stream ended"
    assert not studio.errors and not viewer.errors and not cohost.errors, (studio.errors, viewer.errors, cohost.errors)


def test_a_refused_token_is_said_with_when_to_try_again(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, shots: Path
) -> None:
    """Token refused (issue 13): onair refuses a viewer's media token (here its per-user rate
    limit, ONAIR_AGORA_TOKEN_RATE_LIMIT=1/hour, on the second page load); the player says so,
    with when to try again, instead of "Connecting…" for ever."""
    tmp = tmp_path_factory.mktemp("onair-agora-refused")
    (tmp / "data").mkdir()
    server = OnairServer(tmp / "data", tmp / "onair.log", env={
        "ONAIR_AGORA_APP_ID": APP_ID, "ONAIR_AGORA_APP_CERTIFICATE": CERTIFICATE,
        "ONAIR_AGORA_TOKEN_RATE_LIMIT": "1/hour"})
    server.start()
    try:
        seller = agora_page(browser)
        sign_in(seller, server.url, "sally", "seller")
        seller.fill("#go-live-form input[name=title]", "Rate limited")
        seller.click("#go-live-form button[type=submit]")
        seller.wait_for_url("**/studio/**")
        stream_id = seller.url.rsplit("/", 1)[1]
        seller.wait_for_selector("#start:not([disabled])")
        seller.click("#start")
        seller.wait_for_selector("#status[data-status=live]")

        viewer = agora_page(browser)
        sign_in(viewer, server.url, "rita", "buyer")
        viewer.goto(f"{server.url}/watch/{stream_id}")
        wait_view(viewer, "playing")  # the first token of the hour
        viewer.reload()
        wait_view(viewer, "unavailable")
        assert viewer.get_attribute("#player", "data-failure") == "token-refused"
        text = viewer.text_content("#overlay-text") or ""
        assert re.search(r"Too many video requests; try again in \d+ s\.", text), text
        assert viewer.is_visible("#retry")
        shot(viewer, shots, "e2e-token-refused-viewer")
        assert not viewer.errors, viewer.errors
    finally:
        server.stop()
