"""End to end in real Chromium (issue 13, "Failures and states"): what the chat column and the
player's small controls say around the end of a stream.

* "Load older messages" shows only when older messages exist;
* "Tap for sound" never sits over the paused or ended overlay;
* at the end the chat input is disabled on every page, saying why;
* a viewer who opens the stream after it ended sees its chat history, read-only, with an "ended"
  badge instead of one stuck on "connecting" (no realtime connection is attempted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import send_chat, shot, sign_in, wait_until, wait_view
from tests.e2e.conftest import OnairServer
from tests.e2e.test_pages_in_chromium import go_live, new_page, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHAT_TEXTS = "() => [...document.querySelectorAll('.chat-log li .body')].map((e) => e.textContent)"


def watcher(browser: Any, server: OnairServer, stream_id: str, user: str) -> Any:
    page = new_page(browser)
    sign_in(page, server.url, user, "buyer")
    page.goto(f"{server.url}/watch/{stream_id}")
    return page


def chat_shows(page: Any, text: str) -> bool:
    return text in page.evaluate(CHAT_TEXTS)


def test_chat_and_controls_around_the_end(browser: Any, onair_server: OnairServer, shots: Path) -> None:
    studio, stream_id = go_live(browser, onair_server, "Last call")
    viewer = watcher(browser, onair_server, stream_id, "vera")
    wait_view(viewer, "playing", 30)
    send_chat(viewer, "see you next week")
    wait_until(lambda: chat_shows(viewer, "see you next week") and chat_shows(studio, "see you next week"), 20,
               "the message on both pages")
    # one message: the chat starts at seq 1, there is nothing older to load
    assert not viewer.is_visible(".chat-older")
    assert not studio.is_visible(".chat-older")

    # a page whose autoplay was refused shows "Tap for sound"; the pause overlay hides it
    viewer.evaluate("() => { document.getElementById('unmute').hidden = false; }")
    assert viewer.is_visible("#unmute")
    studio.click("#pause")
    wait_view(viewer, "paused", 20)
    assert not viewer.is_visible("#unmute"), "'Tap for sound' over the paused overlay"
    studio.click("#resume")
    wait_view(viewer, "playing", 30)
    assert viewer.is_visible("#unmute")

    studio.once("dialog", lambda dialog: dialog.accept())
    studio.click("#end")
    wait_view(viewer, "ended", 20)
    assert not viewer.is_visible("#unmute"), "'Tap for sound' over the ended overlay"
    for page in (viewer, studio):
        wait_until(lambda page=page: page.is_disabled(".chat-form input") and page.is_disabled(".chat-form button"),
                   10, f"chat input disabled on {page.url}")
        assert "ended" in (page.get_attribute(".chat-form input", "placeholder") or "")

    late = watcher(browser, onair_server, stream_id, "lena")
    wait_view(late, "ended", 20)
    assert "The stream has ended" in late.text_content("#overlay-text")
    wait_until(lambda: chat_shows(late, "see you next week"), 20, "the ended stream's chat history")
    assert late.is_disabled(".chat-form input")
    assert late.get_attribute("#conn", "data-conn") == "ended" and not late.is_visible("#quality")
    assert not late.is_visible(".chat-older")
    assert late.evaluate("() => globalThis.onair?.socket") is None, "a realtime socket for an ended stream"
    shot(late, shots, "e2e-ended-late-viewer")


def test_load_older_fetches_what_precedes_the_first_page_then_goes_away(browser: Any, onair_server: OnairServer) -> None:
    """A viewer who opens a stream with 120 messages gets the last 100 (the page size); "Load
    older messages" brings the first 20, in order, and then disappears: nothing older exists."""

    def token(user: str, role: str) -> str:
        reply = httpx.post(f"{onair_server.url}/api/v1/auth/dev-sign-in", json={"user": user, "role": role})
        return str(reply.json()["access_token"])

    seller = token("sol", "seller")
    stream_id = httpx.post(f"{onair_server.url}/api/v1/streams", json={"title": "Long chat"},
                           headers={"Authorization": f"Bearer {seller}"}).json()["id"]
    assert httpx.post(f"{onair_server.url}/api/v1/streams/{stream_id}/start",
                      headers={"Authorization": f"Bearer {seller}"}).status_code == 200
    # several senders, so no one meets the per-user chat rate limit
    senders = [token(f"chatter-{i}", "buyer") for i in range(12)]
    with httpx.Client(base_url=onair_server.url) as client:
        for n in range(1, 121):
            reply = client.post(f"/api/v1/streams/{stream_id}/chat",
                                json={"body": f"message {n}", "client_msg_id": f"older-{n}"},
                                headers={"Authorization": f"Bearer {senders[n % len(senders)]}"})
            assert reply.status_code in (200, 201), reply.text
    late = watcher(browser, onair_server, stream_id, "lena")
    wait_until(lambda: chat_shows(late, "message 120"), 20, "the latest page")
    texts = late.evaluate(CHAT_TEXTS)
    assert texts[0] == "message 21" and len(texts) == 100, texts[:3]
    assert late.is_visible(".chat-older")
    late.click(".chat-older")
    wait_until(lambda: chat_shows(late, "message 1"), 10, "the older messages")
    assert late.evaluate(CHAT_TEXTS) == [f"message {n}" for n in range(1, 121)]
    wait_until(lambda: not late.is_visible(".chat-older"), 5, "the button gone: nothing older")
