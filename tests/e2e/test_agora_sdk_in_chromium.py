"""Agora mode with the REAL Web SDK (agora-rtc-sdk-ng, the version the pages load from Agora's
CDN, installed by `make node-deps`) in Chromium with no route to Agora (issue 13, "The real Agora
Web SDK"). The CDN request is answered with the npm bundle; every other request off this host is
refused, as on a network that cannot reach Agora. Without a deadline the SDK's join() never
settles: the studio said "live" over an empty box and the viewer "Connecting…" on black, for ever.

Checked here, against the real SDK: the members the adapter uses exist on the live objects; the
studio shows its camera preview (found by `trackMediaType`) and fills its device pickers; after
Go live it never claims video is on air, and within the join deadline says the video service
can't be reached, with "Try again"; the viewer is counted while it joins and reaches the same
clear state with "Try again"; a retry goes through the join again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import shot, sign_in, wait_until, wait_view
from tests.e2e.conftest import OnairServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "node_modules/agora-rtc-sdk-ng/AgoraRTC_N-production.js"
APP_ID = "0123456789abcdef0123456789abcdef"
CERTIFICATE = "fedcba9876543210fedcba9876543210"
JOIN_TIMEOUT = 8.0


@pytest.fixture(scope="module")
def sdk_bundle() -> str:
    if not BUNDLE.exists():
        pytest.fail(f"{BUNDLE} is missing: `make node-deps` installs the Agora SDK (package.json)")
    return BUNDLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def agora_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    tmp = tmp_path_factory.mktemp("onair-agora-sdk")
    (tmp / "data").mkdir()
    server = OnairServer(tmp / "data", tmp / "onair.log", env={
        "ONAIR_AGORA_APP_ID": APP_ID, "ONAIR_AGORA_APP_CERTIFICATE": CERTIFICATE,
        "ONAIR_WEB_AGORA_JOIN_TIMEOUT": str(JOIN_TIMEOUT),
        # the first-frame deadline is longer than the join deadline, so the join's own reason shows
        "ONAIR_WEB_MEDIA_TIMEOUT": "60",
    })
    server.start()
    try:
        yield server
    finally:
        server.stop()


def offline_from_agora(browser: Any, server: OnairServer, sdk: str) -> Any:
    """A page whose only route is to onair; Agora's CDN answers with the real npm bundle."""
    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    refused: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))

    def route(request: Any) -> None:
        url = request.request.url
        if url.startswith(server.url):
            request.continue_()
        elif url.startswith("https://download.agora.io/"):
            request.fulfill(body=sdk, content_type="application/javascript")
        else:
            refused.append(url)
            request.abort("internetdisconnected")

    page.route("**/*", route)
    page.errors = errors  # type: ignore[attr-defined]
    page.refused = refused  # type: ignore[attr-defined]
    return page


# Members of the live SDK objects the adapter relies on (tests/web/agora_conformance.test.mjs
# checks the declarations; this checks the shipped bundle itself).
LIVE_SURFACE = """() => {
  const client = AgoraRTC.createClient({ mode: "live", codec: "vp8", role: "audience" });
  const missing = [];
  for (const m of ["createClient", "createMicrophoneAndCameraTracks", "getCameras", "getMicrophones"])
    if (typeof AgoraRTC[m] !== "function") missing.push("AgoraRTC." + m);
  for (const m of ["join", "leave", "publish", "subscribe", "on", "removeAllListeners", "renewToken",
                   "setClientRole", "enableDualStream", "setRemoteVideoStreamType",
                   "setRemoteDefaultVideoStreamType", "setStreamFallbackOption"])
    if (typeof client[m] !== "function") missing.push("client." + m);
  const tracks = globalThis.onair?.publisher?.tracks ?? [];
  return { missing, version: AgoraRTC.VERSION, kinds: tracks.map((t) => [t.trackMediaType, "kind" in t]) };
}"""


def test_real_sdk_without_a_route_to_agora_fails_clearly_and_retries(
    browser: Any, agora_server: OnairServer, sdk_bundle: str, shots: Path
) -> None:
    studio = offline_from_agora(browser, agora_server, sdk_bundle)
    sign_in(studio, agora_server.url, "sally", "seller")
    studio.fill("#go-live-form input[name=title]", "Agora unreachable")
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    stream_id = studio.url.rsplit("/", 1)[1]

    # Before going live: the real SDK's camera track previews (the SDK renders its own <video>)
    # and the pickers list the devices.
    studio.wait_for_function("() => [...document.querySelectorAll('#preview-box video')].some(v => v.id !== 'preview' && v.videoWidth > 0)")
    assert studio.locator("#camera option").count() >= 1 and studio.locator("#microphone option").count() >= 1
    surface = studio.evaluate(LIVE_SURFACE)
    assert surface["missing"] == [] and surface["version"] == "4.24.8", surface
    assert sorted(surface["kinds"]) == [["audio", False], ["video", False]], "tracks carry trackMediaType, not kind"

    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    started = time.monotonic()
    studio.wait_for_selector("#sending[data-sending=joining]")
    assert studio.text_content("#status") == "live — no video yet"
    studio.wait_for_selector("#sending[data-sending=failed]", timeout=(JOIN_TIMEOUT + 15) * 1000)
    took = time.monotonic() - started
    assert took < JOIN_TIMEOUT + 10, f"the studio's join gave up after {took:.1f}s"
    assert "Can't reach the video service" in (studio.text_content("#sending-text") or "")
    assert studio.is_visible("#sending-retry")
    assert studio.text_content("#status") == "live — no video yet", "never 'live' while nothing is published"
    studio.screenshot(path=str(shots / "e2e-agora-unreachable-studio.png"), full_page=True)  # the "Video:" line is below the fold

    viewer = offline_from_agora(browser, agora_server, sdk_bundle)
    sign_in(viewer, agora_server.url, "vic", "buyer")
    viewer.goto(f"{agora_server.url}/watch/{stream_id}")
    # counted (the seller sees it) while the SDK is still trying to join
    wait_until(lambda: studio.text_content("#viewers") == "1", JOIN_TIMEOUT - 3, "the joining viewer to be counted")
    assert viewer.get_attribute("#player", "data-view") == "connecting"
    wait_view(viewer, "unavailable", JOIN_TIMEOUT + 15)
    assert viewer.get_attribute("#player", "data-failure") == "service-unreachable"
    assert "Can't reach the video service" in (viewer.text_content("#overlay-text") or "")
    assert viewer.is_visible("#retry") and viewer.text_content("#retry") == "Try again"
    shot(viewer, shots, "e2e-agora-unreachable-viewer")

    # Try again on both pages goes through the join (and its deadline) once more.
    viewer.click("#retry")
    wait_view(viewer, "connecting", 5)
    wait_view(viewer, "unavailable", JOIN_TIMEOUT + 15)
    studio.click("#sending-retry")
    studio.wait_for_selector("#sending[data-sending=joining]")
    studio.wait_for_selector("#sending[data-sending=failed]", timeout=(JOIN_TIMEOUT + 15) * 1000)
    assert any("agora" in url for url in studio.refused), "the SDK did try Agora's servers"

    # A reloaded live studio loads the SDK again and tries to publish again (it used to keep
    # heart-beating a "live" stream that published nothing, without a word).
    studio.reload()
    studio.wait_for_selector("#status[data-status=live]")
    studio.wait_for_selector("#sending[data-sending=joining]", timeout=15_000)
    studio.wait_for_selector("#sending[data-sending=failed]", timeout=(JOIN_TIMEOUT + 15) * 1000)
    # Pause and Resume go through the join again too.
    studio.click("#pause")
    studio.wait_for_selector("#status[data-status=paused]")
    studio.click("#resume")
    studio.wait_for_selector("#status[data-status=live]")
    studio.wait_for_selector("#sending[data-sending=joining]", timeout=15_000)
    studio.wait_for_selector("#sending[data-sending=failed]", timeout=(JOIN_TIMEOUT + 15) * 1000)
    assert not studio.errors and not viewer.errors, (studio.errors, viewer.errors)

