"""Playback telemetry end to end: a seller whose camera sends black frames (forced on purpose with
Chromium's file-backed fake camera) goes live, a viewer watches, and the black screen the pages
see in their sampled frames reaches ``onair_playback_video_problems_total`` on ``/metrics`` —
the viewer's through ``navigator.sendBeacon`` as its page goes away, the studio's through its
batched ``fetch``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import sign_in, wait_until, wait_view
from tests.e2e.conftest import CHROMIUM_FLAGS, OnairServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def black_y4m(path: Path, width: int = 160, height: int = 120, frames: int = 10) -> Path:
    """A black clip for ``--use-file-for-fake-video-capture`` (Y=16 is black in video range)."""
    frame = b"FRAME\n" + bytes([16]) * (width * height) + bytes([128]) * (width * height // 2)
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
                     + frame * frames)
    return path


@pytest.fixture
def black_camera_browser(chromium_path: str, tmp_path: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    clip = black_y4m(tmp_path / "black.y4m")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium_path, args=[
            *CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={clip}"])
        try:
            yield instance
        finally:
            instance.close()


def playback_counter(server: OnairServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            total += float(match.group(2))
    return total


def queued(page: Any, kind: str) -> bool:
    return bool(page.evaluate(
        f"() => (globalThis.onair?.telemetry?.queue ?? []).some((e) => e.kind === '{kind}')"))


def test_a_black_camera_shows_up_in_the_black_screen_counter(
        black_camera_browser: Any, onair_server: OnairServer) -> None:
    errors: list[str] = []
    studio = black_camera_browser.new_context().new_page()
    studio.on("pageerror", lambda err: errors.append(f"studio: {err}"))
    sign_in(studio, onair_server.url, "bella", "seller")
    studio.fill("#go-live-form input[name=title]", "Black camera")
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    stream_id = studio.url.rsplit("/", 1)[1]
    studio.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    before = playback_counter(onair_server, "onair_playback_video_problems_total",
                              page="watch", problem="black")

    viewer = black_camera_browser.new_context().new_page()
    viewer.on("pageerror", lambda err: errors.append(f"viewer: {err}"))
    sign_in(viewer, onair_server.url, "vic", "buyer")
    viewer.goto(f"{onair_server.url}/watch/{stream_id}")
    wait_view(viewer, "playing", timeout=30)
    # detected from the viewer's own sampled frames, still waiting for the next batch …
    wait_until(lambda: queued(viewer, "video_problem"), 30, "the viewer to see a black screen")
    viewer.goto("about:blank")  # … and sent by sendBeacon as the page goes away
    wait_until(lambda: playback_counter(onair_server, "onair_playback_video_problems_total",
                                        page="watch", problem="black") >= before + 1,
               15, "the viewer's black screen on /metrics")
    assert playback_counter(onair_server, "onair_playback_sessions_total", page="watch") >= 1
    assert playback_counter(onair_server, "onair_playback_time_to_first_frame_seconds_count",
                            page="watch") >= 1
    # the studio sees its own black camera and reports it in its batched fetch (every 10 s)
    wait_until(lambda: playback_counter(onair_server, "onair_playback_video_problems_total",
                                        page="studio", problem="black") >= 1,
               40, "the studio's black camera on /metrics")
    assert playback_counter(onair_server, "onair_playback_reports_total", outcome="invalid") == 0
    assert not errors, errors


def test_a_moving_camera_reports_playback_but_no_video_problem(
        browser: Any, onair_server: OnairServer) -> None:
    """The control: Chromium's usual fake camera (a moving test pattern) is neither black nor
    frozen, so the same sampling reports a first frame and no problem."""
    studio = browser.new_context().new_page()
    sign_in(studio, onair_server.url, "mona", "seller")
    studio.fill("#go-live-form input[name=title]", "Moving camera")
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    stream_id = studio.url.rsplit("/", 1)[1]
    studio.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    problems = [playback_counter(onair_server, "onair_playback_video_problems_total", page=page,
                                 problem=problem)
                for page in ("watch", "studio") for problem in ("black", "frozen")]
    sessions = playback_counter(onair_server, "onair_playback_sessions_total", page="watch")
    viewer = browser.new_context().new_page()
    sign_in(viewer, onair_server.url, "milo", "buyer")
    viewer.goto(f"{onair_server.url}/watch/{stream_id}")
    wait_view(viewer, "playing", timeout=30)
    wait_until(lambda: queued(viewer, "first_frame") or viewer.evaluate("onair.telemetry.sent"),
               15, "the viewer's first frame")
    viewer.wait_for_timeout(7000)  # three frame samples at least
    viewer.goto("about:blank")  # everything the viewer had goes out as beacons
    studio.goto("about:blank")
    wait_until(lambda: playback_counter(onair_server, "onair_playback_sessions_total",
                                        page="watch") > sessions, 15, "the viewer's report")
    assert [playback_counter(onair_server, "onair_playback_video_problems_total", page=page,
                             problem=problem)
            for page in ("watch", "studio") for problem in ("black", "frozen")] == problems
