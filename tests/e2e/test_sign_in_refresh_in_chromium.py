"""Sign-in beyond dev auth, in real Chromium (issue 13): with dev auth off, a page gets its user
token from the embedding app's hook (`window.onairAuth.getAccessToken()`, client/user_token.js),
refreshes it through the same hook before it expires (a Supabase Auth token lives an hour; here a
minute), and keeps working on the fresh token: REST calls and the realtime channels use it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.browser import send_chat, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_pages_in_chromium import new_page, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECRET = secrets.token_hex(32)


def token(user: str, role: str, lifetime: float) -> str:
    now = int(time.time())
    claims = {"sub": user, "aud": "authenticated", "role": "authenticated", "iat": now,
              "exp": now + int(lifetime), "app_metadata": {"role": role}}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    tmp = tmp_path_factory.mktemp("onair-sign-in")
    (tmp / "data").mkdir()
    instance = OnairServer(tmp / "data", tmp / "onair.log",
                           env={"ONAIR_DEV_AUTH": "false", "ONAIR_JWT_SECRET": SECRET})
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def test_the_apps_hook_signs_the_page_in_and_refreshes_before_expiry(browser: Any, server: OnairServer) -> None:
    seller = token("sonja", "seller", 3600)
    created = httpx.post(f"{server.url}/api/v1/streams", json={"title": "Hooked"},
                         headers={"Authorization": f"Bearer {seller}"})
    assert created.status_code == 201, created.text
    stream_id = created.json()["id"]
    started = httpx.post(f"{server.url}/api/v1/streams/{stream_id}/start", headers={"Authorization": f"Bearer {seller}"})
    assert started.status_code == 200, started.text  # chat needs a live stream; no studio page, so no video
    # Expires in 65 s: the page refreshes a minute before, so within ~5 s.
    first, fresh = token("bea", "buyer", 65), token("bea", "buyer", 3600)
    page = new_page(browser)
    page.add_init_script(f"""window.__tokens = {json.dumps([first, fresh])}; window.__calls = 0;
      window.onairAuth = {{ getAccessToken: async () => window.__tokens[Math.min(window.__calls++, 1)] }};""")
    page.goto(f"{server.url}/watch/{stream_id}")
    wait_view(page, "waiting", 20)  # signed in from the hook (no "please sign in"); no one publishes
    assert page.evaluate("() => JSON.parse(localStorage.getItem('onair.session')).user_id") == "bea"

    wait_until(lambda: page.evaluate("() => document.documentElement.dataset.tokenSource") == "hook", 30,
               "the page to refresh its token through the hook")
    assert page.evaluate("() => window.__calls") == 2
    assert page.evaluate("() => JSON.parse(localStorage.getItem('onair.session')).access_token") == fresh
    assert page.evaluate("() => [...onair.socket.channels.values()].every(c => c.accessToken === window.__tokens[1])")

    send_chat(page, "still signed in")

    def stored() -> list[tuple[str, str]]:
        history = httpx.get(f"{server.url}/api/v1/streams/{stream_id}/chat",
                            headers={"Authorization": f"Bearer {seller}"}).json()
        return [(m["sender_id"], m["body"]) for m in history["messages"]]

    wait_until(lambda: stored() == [("bea", "still signed in")], 15,
               f"the message stored (page: {page.text_content('#chat')!r})")


def test_a_seller_signed_in_by_the_hook_opens_the_studio(browser: Any, server: OnairServer) -> None:
    page = new_page(browser)
    page.add_init_script(f"window.onairAuth = {{ getAccessToken: async () => {json.dumps(token('sofia', 'seller', 3600))} }};")
    page.goto(f"{server.url}/")
    page.wait_for_selector("#go-live:not([hidden])")
    assert page.is_hidden("#sign-in"), "no dev sign-in form without dev auth"
    page.fill("#go-live-form input[name=title]", "From the app's sign-in")
    page.click("#go-live-form button[type=submit]")
    page.wait_for_url("**/studio/**")
    page.wait_for_selector("#start:not([disabled])")
    assert page.is_hidden("#studio-error")
    assert "sofia (seller)" in (page.text_content("#session") or "")


def test_without_any_sign_in_the_page_says_so(browser: Any, server: OnairServer) -> None:
    seller = token("sonja", "seller", 3600)
    stream_id = httpx.post(f"{server.url}/api/v1/streams", json={"title": "No hook"},
                           headers={"Authorization": f"Bearer {seller}"}).json()["id"]
    page = new_page(browser)
    page.goto(f"{server.url}/watch/{stream_id}")
    wait_view(page, "error", 20)
    assert "sign in" in (page.text_content("#overlay-text") or "")
