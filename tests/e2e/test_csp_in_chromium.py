"""Issue 10 finding 11: the pages send a Content-Security-Policy, no framing and nosniff — and
still work under them in real Chromium: a seller goes live, a viewer watches (local WebRTC, the
realtime WebSocket, REST chat) with no `securitypolicyviolation` on any page; in Agora mode the
SDK from Agora's CDN is allowed, and only there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.browser import moving_picture, send_chat, sign_in, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_agora_mode_in_chromium import APP_ID, CERTIFICATE, SDK

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Registered before any page script (Playwright's init scripts are not subject to the CSP).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(
  {directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample, page: location.pathname}));
"""
AGORA_SDK = "https://download.agora.io/sdk/release/AgoraRTC_N-4.24.8.js"


def new_page(browser: Any, *, agora_stub: bool = False) -> Any:
    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.csp_console = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: "Content Security Policy" in msg.text
            and page.csp_console.append(msg.text))  # type: ignore[attr-defined]
    page.on("pageerror", lambda err: page.csp_console.append(f"pageerror: {err}"))  # type: ignore[attr-defined]
    if agora_stub:
        page.route("https://download.agora.io/**",
                   lambda route: route.fulfill(body=SDK, content_type="application/javascript"))
    return page


def violations(page: Any) -> list[Any]:
    return [*page.evaluate("() => window.__csp"), *page.csp_console]


def go_live(browser: Any, base: str, agora: bool = False) -> tuple[Any, str]:
    studio = new_page(browser, agora_stub=agora)
    sign_in(studio, base, "sally", "seller")
    studio.fill("#go-live-form input[name=title]", "CSP drop")
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    stream_id = studio.url.rsplit("/", 1)[1]
    studio.wait_for_selector("#start:not([disabled])")
    if not agora:
        studio.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    return studio, stream_id


def test_headers_of_pages_static_files_and_api(onair_server: OnairServer) -> None:
    base = onair_server.url
    for path in ("/", "/studio/abc", "/watch/abc"):
        headers = httpx.get(base + path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "download.agora.io" not in csp  # local mode: no CDN
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
    for path in ("/static/pages/watch.js", "/static/styles.css", "/api/v1/streams", "/healthz",
                 "/api/v1/nowhere"):
        response = httpx.get(base + path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "content-security-policy" not in response.headers


def test_pages_work_under_the_policy_in_local_mode(browser: Any, onair_server: OnairServer) -> None:
    base = onair_server.url
    studio, stream_id = go_live(browser, base)
    viewer = new_page(browser)
    sign_in(viewer, base, "vera", "buyer")
    viewer.goto(f"{base}/watch/{stream_id}")
    wait_view(viewer, "playing")
    moving_picture(viewer)  # WebRTC video from the studio
    viewer.wait_for_selector("#conn[data-conn=connected]")  # the realtime WebSocket
    send_chat(viewer, "allowed by the policy")
    wait_until(lambda: "allowed by the policy" in (studio.text_content(".chat-log") or ""), 20,
               "the chat line on the studio")
    pages = [studio, viewer]
    home = new_page(browser)
    home.goto(f"{base}/")
    home.wait_for_selector(f"#live-list a[href*='{stream_id}']")
    pages.append(home)
    for page in pages:
        assert violations(page) == [], page.url

    # The policy is enforced (the recorder is live): an injected inline script and the Agora
    # CDN are refused on a local-mode page.
    ran = viewer.evaluate("""async (cdnUrl) => {
        window.__ran = false;
        const inline = document.createElement('script');
        inline.textContent = 'window.__ran = true';
        document.body.append(inline);
        const cdn = document.createElement('script');
        cdn.src = cdnUrl;
        const loaded = new Promise((ok) => { cdn.onload = () => ok('loaded'); cdn.onerror = () => ok('refused'); });
        document.body.append(cdn);
        return [window.__ran, await loaded];
    }""", AGORA_SDK)
    assert ran == [False, "refused"]
    directives = {v["directive"] for v in viewer.evaluate("() => window.__csp")}
    assert directives == {"script-src-elem"}, directives
    studio.context.close()
    viewer.context.close()
    home.context.close()


@pytest.fixture(scope="module")
def agora_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    tmp = tmp_path_factory.mktemp("onair-csp-agora")
    (tmp / "data").mkdir()
    server = OnairServer(tmp / "data", tmp / "onair.log",
                         env={"ONAIR_AGORA_APP_ID": APP_ID, "ONAIR_AGORA_APP_CERTIFICATE": CERTIFICATE})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_agora_mode_allows_the_sdk_cdn(browser: Any, agora_server: OnairServer) -> None:
    csp = httpx.get(f"{agora_server.url}/").headers["content-security-policy"]
    assert "script-src 'self' https://download.agora.io;" in csp
    assert "wss://*.agora.io" in csp and "wss://*.sd-rtn.com" in csp
    studio, stream_id = go_live(browser, agora_server.url, agora=True)
    viewer = new_page(browser, agora_stub=True)
    viewer.goto(f"{agora_server.url}/watch/{stream_id}")
    wait_view(viewer, "playing")
    assert viewer.evaluate("() => typeof AgoraRTC") == "object"  # the SDK from the CDN ran
    for page in (studio, viewer):
        assert violations(page) == [], page.url
