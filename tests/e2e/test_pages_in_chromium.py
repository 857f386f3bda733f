"""End to end in real Chromium: a seller goes live, two viewers watch, chat, pause, restart, end.

Runs `onair serve` as a subprocess (SQLite, in-memory broker) and drives Debian's chromium with a
fake camera through Playwright. Screenshots of every page at every stage go to `test-output/`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.e2e.browser import (
    chat_lines,
    click_while_shown,
    moving_picture,
    send_chat,
    shot,
    sign_in,
    view_of,
    wait_until,
    wait_view,
)
from tests.e2e.conftest import OnairServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHAT_PATH = "/api/v1/streams/{stream_id}/chat"


PAGE_ERRORS: list[str] = []


@pytest.fixture(autouse=True)
def no_uncaught_errors() -> Any:
    """Any uncaught exception in any page fails the test."""
    PAGE_ERRORS.clear()
    yield
    assert not PAGE_ERRORS, PAGE_ERRORS


def new_page(browser: Any, **options: Any) -> Any:
    page = browser.new_context(**options).new_page()
    page.set_default_timeout(20_000)
    page.on("pageerror", lambda err: PAGE_ERRORS.append(f"{page.url}: {err}"))
    return page


def go_live(browser: Any, server: OnairServer, title: str) -> tuple[Any, str]:
    studio = new_page(browser)
    sign_in(studio, server.url, "sally", "seller")
    studio.fill("#go-live-form input[name=title]", title)
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    stream_id = studio.url.rsplit("/", 1)[1]
    studio.wait_for_selector("#start:not([disabled])")
    studio.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    return studio, stream_id


def same_chat_everywhere(pages: list[Any], expected_bodies: list[str]) -> list[tuple[int, str]]:
    def agreed() -> list[tuple[int, str]] | None:
        lines = [chat_lines(p) for p in pages]
        if all(line == lines[0] for line in lines) and [b for _, b in lines[0]] == expected_bodies:
            return lines[0]
        return None

    lines = wait_until(agreed, 20, f"the same chat {expected_bodies} on every page")
    seqs = [seq for seq, _ in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), lines
    return lines


def test_pages_work_over_rest_alone(browser: Any, onair_server: OnairServer, shots: Path) -> None:
    """What needs no realtime: sign-in, go live, studio controls, the home list, an unknown
    stream's error with retry, and a player that keeps a non-zero box when the phone rotates."""
    studio, stream_id = go_live(browser, onair_server, "Vintage lamps")
    shot(studio, shots, "rest-studio-live")
    studio.click("#pause")
    studio.wait_for_selector("#status[data-status=paused]")
    assert studio.is_enabled("#resume") and not studio.is_enabled("#pause")
    studio.click("#resume")
    studio.wait_for_selector("#status[data-status=live]")

    home = new_page(browser)
    home.goto(f"{onair_server.url}/")
    home.wait_for_selector(f"#live-list li[data-stream-id='{stream_id}']")
    assert "Vintage lamps" in home.text_content("#live-list")
    shot(home, shots, "rest-home")

    lost = new_page(browser)
    lost.goto(f"{onair_server.url}/watch/no-such-stream")
    wait_view(lost, "error")
    assert lost.is_visible("#retry")
    assert "does not exist" in lost.text_content("#overlay-text")
    shot(lost, shots, "rest-watch-unknown-stream")

    phone = new_page(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone.goto(f"{onair_server.url}/watch/{stream_id}")
    phone.wait_for_selector("#player")
    for width, height in ((390, 844), (844, 390), (390, 844)):
        phone.set_viewport_size({"width": width, "height": height})
        box = wait_until(lambda: phone.locator("#player").bounding_box(), 5, "player box")
        assert box["width"] > 100 and box["height"] > 50, (width, height, box)
        assert box["width"] <= width + 1
        fit = phone.eval_on_selector("#video", "v => getComputedStyle(v).objectFit")
        assert fit == "contain"
    shot(phone, shots, "rest-watch-phone-portrait")
    assert view_of(phone) in {"connecting", "waiting", "reconnecting", "playing"}

    studio.once("dialog", lambda dialog: dialog.accept())
    studio.click("#end")
    studio.wait_for_selector("#status[data-status=ended]")
    ended = new_page(browser)
    ended.goto(f"{onair_server.url}/watch/{stream_id}")
    wait_view(ended, "ended")
    shot(ended, shots, "rest-watch-ended")


def test_seller_goes_live_viewers_watch_chat_pause_restart_end(
    browser: Any, onair_server: OnairServer, shots: Path
) -> None:
    """The whole story of issue 6 in one stream (each stage needs the previous one)."""
    need(onair_server.has_realtime(), "this build has no realtime endpoint yet (issue 5)")
    need(onair_server.has_path("post", CHAT_PATH), "this build has no chat endpoints yet (issue 4)")

    studio, stream_id = go_live(browser, onair_server, "Sneaker drop")
    viewers = [new_page(browser) for _ in range(2)]
    for viewer in viewers:
        viewer.goto(f"{onair_server.url}/watch/{stream_id}")

    # 1. Both viewers see video that is not black, and it moves.
    for i, viewer in enumerate(viewers):
        wait_view(viewer, "playing")
        stats = moving_picture(viewer)
        assert 10 < stats["mean"] < 250 and stats["std"] > 5, stats
        shot(viewer, shots, f"e2e-1-playing-viewer{i + 1}")
    shot(studio, shots, "e2e-1-studio-live")
    pages = [studio, *viewers]

    # 2. Chat both ways, in the same order on every page.
    send_chat(viewers[0], "Is it true to size?")
    wait_until(lambda: any(b == "Is it true to size?" for _, b in chat_lines(studio)), 15, "chat at studio")
    send_chat(studio, "Yes, order your usual size")
    wait_until(lambda: len(chat_lines(viewers[1])) >= 2, 15, "chat at viewer 2")
    send_chat(viewers[1], "<b>Sold!</b>")
    expected = ["Is it true to size?", "Yes, order your usual size", "<b>Sold!</b>"]
    same_chat_everywhere(pages, expected)
    assert viewers[0].locator(".chat-log b").count() == 0, "chat text must never become HTML"
    for i, page in enumerate(pages):
        shot(page, shots, f"e2e-2-chat-{'studio' if i == 0 else f'viewer{i}'}")

    # 3. Pause → "paused"; resume → video again.
    studio.click("#pause")
    for viewer in viewers:
        wait_view(viewer, "paused", 15)
    shot(viewers[0], shots, "e2e-3-paused-viewer1")
    studio.click("#resume")
    for viewer in viewers:
        wait_view(viewer, "playing", 20)
        moving_picture(viewer)

    # 4. The onair process restarts mid-stream. Local WebRTC video does not pass through it, so
    #    it keeps playing: the viewers get a banner about the lost connection, not an overlay over
    #    live video. They recover, and a chat message sent meanwhile appears once, in order,
    #    everywhere.
    onair_server.stop()
    for viewer in viewers:
        wait_until(lambda viewer=viewer: viewer.get_attribute("#conn", "data-conn") in ("reconnecting", "failed")
                   and viewer.is_visible("#notice"), 30, f"the lost-connection banner on {viewer.url}")
        assert view_of(viewer) == "playing", "an overlay over video that still plays"
        moving_picture(viewer)
    shot(viewers[0], shots, "e2e-4-reconnecting-viewer1")
    send_chat(viewers[0], "sent while the server was down")
    time.sleep(1.0)
    onair_server.start()
    for viewer in viewers:
        # a user who sees "can't reach the server" presses "Retry now" (the manual retry path)
        def back(viewer: Any = viewer) -> bool:
            click_while_shown(viewer, "#notice-retry")
            return view_of(viewer) == "playing" and viewer.get_attribute("#conn", "data-conn") == "connected"

        wait_until(back, 60, f"connected and playing again on {viewer.url}", every=0.5)
        moving_picture(viewer)
    expected.append("sent while the server was down")
    same_chat_everywhere(pages, expected)
    shot(viewers[0], shots, "e2e-4-recovered-viewer1")

    # 5. End → "ended" for everyone.
    studio.once("dialog", lambda dialog: dialog.accept())
    studio.click("#end")
    for viewer in viewers:
        wait_view(viewer, "ended", 20)
        assert "ended" in viewer.text_content("#overlay-text")
    studio.wait_for_selector("#status[data-status=ended]")
    # 6. Issue 11 §5: after its grace the server closes the stream's channel; the pages keep the
    #    ended view and the chat, and do not rejoin.
    channel_state = "() => [...globalThis.onair.socket.channels.values()].map((c) => [c.state, c.joinCount])"
    for viewer in viewers:
        wait_until(lambda viewer=viewer: all(s == "closed" for s, _ in viewer.evaluate(channel_state)), 20,
                   f"channel closed on {viewer.url}")
    joins = [viewer.evaluate(channel_state) for viewer in viewers]
    time.sleep(3.0)  # longer than the first rejoin delays (1 s, 2 s)
    for viewer, before in zip(viewers, joins, strict=True):
        assert viewer.evaluate(channel_state) == before, "the page rejoined an ended stream's channel"
        assert "The stream has ended" in viewer.text_content("#overlay-text")
    same_chat_everywhere(pages, expected)
    for i, page in enumerate(pages):
        shot(page, shots, f"e2e-5-ended-{'studio' if i == 0 else f'viewer{i}'}")


AGORA_SCENARIO = """async () => {
  const { createStubAgora } = await import('/__stub__/agora.mjs');
  const { AgoraViewer } = await import('/static/client/media/agora.js');
  const { TrackRouter } = await import('/static/client/media/track_router.js');
  const player = document.createElement('div');
  player.className = 'player';
  document.body.prepend(player);
  const container = document.createElement('div');
  container.dataset.agora = '';
  player.append(container);
  const host = { uid: 7 };
  const AgoraRTC = createStubAgora({ publishersInChannel: [{ user: host, mediaType: 'video' }] });
  let n = 1;
  const creds = { token: 't1', app_id: 'app', channel: 'onair_s1', uid: 42, expires_at: '2030-01-01T00:00:00Z' };
  const api = { rtcToken: async () => creds, refreshRtcToken: async () => ({ ...creds, token: `t${++n}` }) };
  const router = new TrackRouter({ streamId: 's1' });
  const viewer = new AgoraViewer({ AgoraRTC, api, streamId: 's1', container, router });
  const statuses = [];
  viewer.on('status', (s) => statuses.push(s));
  let autoplayBlocked = 0;
  viewer.on('autoplay-blocked', () => autoplayBlocked++);
  await viewer.start();
  const client = AgoraRTC.clients[0];
  AgoraRTC.onAutoplayFailed();
  await client.fire('token-privilege-will-expire');
  for (let i = 0; i < 2; i++) await client.fire('network-quality', { downlinkNetworkQuality: 5 });
  await viewer.stop();
  return { calls: JSON.parse(JSON.stringify(AgoraRTC.calls.map((c) => c.map((x) => (x instanceof Element ? 'ELEMENT' : x))))), statuses, autoplayBlocked };
}"""


def test_agora_adapter_in_chromium_with_a_stub_sdk(browser: Any, onair_server: OnairServer) -> None:
    """The Agora adapter as the browser loads it (ES modules served by onair), against a stub of
    the SDK's documented interface injected into the page: handlers before join, subscribe then
    play into an attached, non-zero container with fit contain, autoplay fallback, renewToken,
    low stream under a poor network, leave."""
    root = Path(__file__).resolve().parents[2]
    stub = (root / "tests" / "web" / "support" / "stub_agora.mjs").read_text()
    page = new_page(browser)
    page.route("**/__stub__/agora.mjs",
               lambda route: route.fulfill(body=stub, content_type="text/javascript"))
    page.goto(f"{onair_server.url}/")
    result = page.evaluate(AGORA_SCENARIO)
    calls = [c[0] for c in result["calls"]]
    join = calls.index("join")
    assert calls.index("createClient") < join
    assert all(calls.index(name) < join for name in ("on", "setRemoteDefaultVideoStreamType"))
    play = result["calls"][calls.index("play")]
    assert play[3] == "ELEMENT" and play[4] == {"fit": "contain"}
    placement = result["calls"][calls.index("placement")][2]
    assert placement["connected"] and placement["width"] > 0 and placement["height"] > 0, placement
    assert calls.index("subscribe") < calls.index("play")
    assert ["renewToken", "t2"] in result["calls"]
    assert ["setRemoteVideoStreamType", 7, 1] in result["calls"]
    assert result["autoplayBlocked"] == 1
    assert result["statuses"][-1] == "playing"
    assert calls[-1] == "leave"
