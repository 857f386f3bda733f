"""End to end in real Chromium (issue 13, "Phones and rotation"): the watch page, the studio and
the home page on a portrait phone (390×844), a landscape phone (844×390) and a desktop
(1280×800), and the watch page across rotations while the video plays.

On every viewport: nothing overflows sideways (the document is no wider than the window), the video
letterboxes (`object-fit: contain`: the picture keeps the source's aspect ratio within 1 %, checked
on the pixels of a screenshot, not only on the CSS) and the fitted picture is inside the window.
The viewer sees the picture, its controls and the chat input with its Send button without
scrolling, in both orientations; the studio's stream controls are in view, and everything else
on every page is reachable by scrolling down, never sideways.

Phones are Playwright's mobile emulation (`is_mobile`, touch, device pixel ratio 3), where a page
wider than the screen makes Chromium zoom out: the window then reports a larger `innerWidth`, so
the test also checks that `innerWidth` is the width asked for. Screenshots go to `test-output/`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.e2e.browser import chat_lines, moving_picture, send_chat, sign_in, wait_until, wait_view
from tests.e2e.conftest import CHROMIUM_FLAGS, OnairServer
from tests.e2e.test_pages_in_chromium import PAGE_ERRORS, no_uncaught_errors  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PORTRAIT = (390, 844)
LANDSCAPE = (844, 390)
DESKTOP = (1280, 800)
PHONE = {"is_mobile": True, "has_touch": True, "device_scale_factor": 3}

# What the viewer must see at once, and what either page must at least reach by scrolling down.
WATCH_IN_VIEW = {
    "player tools": "#player .player-tools button",
    "chat input": ".chat-form input",
    "chat send": ".chat-form button",
}
WATCH_REACHABLE = {"reactions": "#reactions button"}
HOME_REACHABLE = {
    "header": ".brand, #session button",
    "forms": "#sign-in-form input, #sign-in-form select, #sign-in-form button, "
             "#go-live-form input, #go-live-form button",
    "live streams": "#live-list a",
}
STUDIO_IN_VIEW = {"stream controls": "#start, #pause, #resume, #end"}
STUDIO_REACHABLE = {
    "device pickers": "#camera, #microphone",
    "co-host invite": "#cohost-form input, #cohost-form button",
    "product form": "#product-form input, #product-form button",
    "chat input": ".chat-form input",
    "chat send": ".chat-form button",
}

# Shared by the two snippets below: which elements count, and how they are named in a failure.
HELPERS = """
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const edges = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  // on top at its centre: not covered by something else, not clipped away
  const onTop = (el) => { const [l, t, r, b] = edges(el); return el.contains(document.elementFromPoint((l + r) / 2, (t + b) / 2)); };
"""

# The chat every viewer finds, with a long unbroken word that must wrap, not widen the page.
CHAT = ["Welcome! Every mug is thrown by hand",
        "Glazes: https://shop.example/ceramics/glazes/celadon-tenmoku-shino-and-wood-ash-samples",
        "Sizes S, M and L, ask me anything"]

MEASURE = """(groups) => {""" + HELPERS + """
  const v = document.querySelector('#video, #preview');
  const boxes = {};
  for (const [group, selector] of Object.entries(groups))
    boxes[group] = [...document.querySelectorAll(selector)].filter(shown).map((el) => [name(el), edges(el), onTop(el)]);
  // for the failure message: what sticks out of the window sideways (outside sideways scrollers)
  const scroller = (el) => { for (let p = el.parentElement; p; p = p.parentElement)
    if (p !== document.body && getComputedStyle(p).overflowX !== 'visible') return true; return false; };
  const wide = [...document.body.querySelectorAll('*')].filter(shown).filter((el) => {
    const r = el.getBoundingClientRect();
    return (r.right > innerWidth + 0.5 || r.left < -0.5) && !scroller(el);
  }).map((el) => [name(el), Math.round(el.getBoundingClientRect().right - innerWidth)]).slice(0, 8);
  return {
    innerWidth, innerHeight, scrollX, scrollY, scrollWidth: document.documentElement.scrollWidth,
    video: v && { box: edges(v), source: [v.videoWidth, v.videoHeight], fit: getComputedStyle(v).objectFit,
                  position: getComputedStyle(v).objectPosition, paused: v.paused },
    boxes, wide,
  };
}"""

# Scrolls each element of a group into view in turn: where it lands and whether the page had to
# scroll sideways for it.
REACH = """(selector) => {""" + HELPERS + """
  return [...document.querySelectorAll(selector)].filter(shown).map((el) => {
    el.scrollIntoView({ block: 'center', inline: 'nearest' });
    return [name(el), edges(el), onTop(el), scrollX];
  });
}"""

# The bounding box of the non-black pixels of a PNG (the picture inside its black letterbox bars;
# the fake camera's frame is green to its edges). Decoded in the page: no imaging library needed.
PICTURE_BOX = """async (png) => {
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  const img = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
  const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let x0 = c.width, y0 = c.height, x1 = -1, y1 = -1;
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
    const i = 4 * (y * c.width + x);
    if (Math.max(d[i], d[i + 1], d[i + 2]) > 48) {
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
  }
  return { width: img.width, height: img.height, box: x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1] };
}"""

SETTLE = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
HIDE_TOOLS = """(hidden) => document.querySelectorAll('.player-tools, .overlay, .reaction-float')
  .forEach((el) => { el.style.visibility = hidden ? 'hidden' : ''; })"""


@pytest.fixture(scope="module")
def chromium(chromium_path: str) -> Iterator[Any]:
    """One browser for the module: the stream stays live across its tests."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


def phone_page(browser: Any, size: tuple[int, int], **options: Any) -> Any:
    width, height = size
    page = browser.new_context(viewport={"width": width, "height": height}, **options).new_page()
    page.set_default_timeout(20_000)
    page.on("pageerror", lambda err: PAGE_ERRORS.append(f"{page.url}: {err}"))
    return page


@pytest.fixture(scope="module")
def live(chromium: Any, onair_server: OnairServer) -> tuple[Any, str]:
    """A seller live from a phone held upright: (studio page, stream id)."""
    need(onair_server.has_realtime(), "this build has no realtime endpoint yet (issue 5)")
    studio = phone_page(chromium, PORTRAIT, **PHONE)
    sign_in(studio, onair_server.url, "pia", "seller")
    studio.fill("#go-live-form input[name=title]", "Handmade ceramics, all sizes and glazes")
    studio.click("#go-live-form button[type=submit]")
    studio.wait_for_url("**/studio/**")
    studio.wait_for_selector("#start:not([disabled])")
    studio.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    studio.click("#start")
    studio.wait_for_selector("#status[data-status=live]")
    for line in CHAT:
        send_chat(studio, line)
    wait_until(lambda: [body for _, body in chat_lines(studio)] == CHAT, 15, "the seller's chat")
    return studio, studio.url.rsplit("/", 1)[1]


def fitted(box: list[float], source: list[int]) -> tuple[float, float, float, float]:
    """Where `object-fit: contain` (centred) puts a source of this size inside the element box."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    scale = min(width / source[0], height / source[1])
    w, h = source[0] * scale, source[1] * scale
    return (left + (width - w) / 2, top + (height - h) / 2, left + (width + w) / 2, top + (height + h) / 2)


def inside(edges: list[float] | tuple[float, ...], width: int, height: int, slack: float = 0.5) -> bool:
    left, top, right, bottom = edges
    return left >= -slack and top >= -slack and right <= width + slack and bottom <= height + slack


def resize(page: Any, size: tuple[int, int]) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.evaluate("() => scrollTo(0, 0)")
    page.evaluate(SETTLE)


def check_layout(page: Any, size: tuple[int, int], in_view: dict[str, str], reachable: dict[str, str],
                 where: str, *, video: bool = True) -> dict[str, Any]:
    """The window is the size asked for, nothing overflows sideways, the picture (if `video`)
    letterboxes inside the window, `in_view` is inside the window without scrolling and
    `reachable` is after scrolling down (never sideways). Fails with every problem found, not
    just the first."""
    width, height = size
    m = page.evaluate(MEASURE, {**in_view, **reachable})
    problems: list[str] = []
    if (m["innerWidth"], m["innerHeight"]) != (width, height):
        problems.append(f"the window is {m['innerWidth']}×{m['innerHeight']}, not {width}×{height} "
                        "(a page wider than a phone's screen makes Chromium zoom out)")
    if m["scrollWidth"] > width:
        problems.append(f"the page scrolls sideways by {m['scrollWidth'] - width}px")
    if m["wide"]:
        problems.append(f"sticking out sideways (element, px): {m['wide']}")
    if video:
        problems += check_picture(page, m["video"], size, where)

    for group in in_view:
        if not m["boxes"][group]:
            problems.append(f"no {group} on the page")
        for element, edges, on_top in m["boxes"][group]:
            if not (inside(edges, width, height) and on_top):
                problems.append(f"{group} {element} at {[round(e) for e in edges]} is not in view without "
                                "scrolling" + ("" if on_top else " (covered, clipped or out of the window)"))
    for group, selector in reachable.items():
        landed = page.evaluate(REACH, selector)
        if not landed:
            problems.append(f"no {group} on the page")
        for element, edges, on_top, scroll_x in landed:
            if scroll_x != 0:
                problems.append(f"reaching {group} {element} scrolled the page sideways to {scroll_x}")
            if not (inside(edges, width, height) and on_top):
                problems.append(f"{group} {element} at {[round(e) for e in edges]} is not reachable by "
                                "scrolling down" + ("" if on_top else " (covered or clipped)"))
    page.evaluate("() => scrollTo(0, 0)")
    assert not problems, f"{where} ({width}×{height}):\n  " + "\n  ".join(problems)
    return m


def check_picture(page: Any, video: dict[str, Any], size: tuple[int, int], where: str) -> list[str]:
    """The picture letterboxes (`object-fit: contain`, centred), is large enough and inside the
    window, and is drawn that way."""
    width, height = size
    assert video["fit"] == "contain" and video["position"] == "50% 50%", (where, video)
    assert video["source"][0] > 0 and video["source"][1] > 0, (where, video)
    picture = fitted(video["box"], video["source"])
    problems = []
    if not inside(picture, width, height):
        problems.append(f"the picture {[round(e) for e in picture]} is not inside the window")
    if not (picture[2] - picture[0] > 0.4 * width or picture[3] - picture[1] > 0.3 * height):
        problems.append(f"the picture {[round(e) for e in picture]} is too small for the window")
    return problems + check_pixels(page, video, picture)


def check_pixels(page: Any, video: dict[str, Any], picture: tuple[float, ...]) -> list[str]:
    """The picture as drawn: its non-black box (in a screenshot of the player, its tools hidden)
    has the source's aspect ratio within 1 % and sits where `object-fit: contain` puts it."""
    page.evaluate(HIDE_TOOLS, True)
    try:
        png = page.locator("#player, #preview-box").first.screenshot(scale="device", animations="disabled")
    finally:
        page.evaluate(HIDE_TOOLS, False)
    drawn = page.evaluate(PICTURE_BOX, base64.b64encode(png).decode())
    if not drawn["box"]:
        return ["no picture in the player (all black)"]
    left, top, right, bottom = video["box"]
    ratio = drawn["width"] / (right - left)  # device pixels per CSS pixel
    x0, y0, x1, y1 = (v / ratio for v in drawn["box"])
    source = video["source"][0] / video["source"][1]
    shown = (x1 - x0) / (y1 - y0)
    problems = []
    if abs(shown / source - 1) > 0.01:
        problems.append(f"the picture is drawn {x1 - x0:.1f}×{y1 - y0:.1f} (aspect {shown:.4f}), the source "
                        f"is {video['source'][0]}×{video['source'][1]} (aspect {source:.4f}): stretched")
    expected = (picture[0] - left, picture[1] - top, picture[2] - left, picture[3] - top)
    if any(abs(got - want) > 2 for got, want in zip((x0, y0, x1, y1), expected, strict=True)):
        problems.append(f"the picture is drawn at {[round(v, 1) for v in (x0, y0, x1, y1)]} in the player, "
                        f"not where object-fit: contain puts it, {[round(v, 1) for v in expected]}")
    return problems


def shot(page: Any, directory: Path, name: str) -> None:
    """A screenshot in CSS pixels (a phone's device pixels would make it three times as large)."""
    page.screenshot(path=str(directory / f"{name}.png"), scale="css")


def watch(browser: Any, server: OnairServer, stream_id: str, size: tuple[int, int], **options: Any) -> Any:
    viewer = phone_page(browser, size, **options)
    viewer.goto(f"{server.url}/watch/{stream_id}")
    wait_view(viewer, "playing", 30)
    viewer.wait_for_selector(".chat-form input")
    moving_picture(viewer)
    return viewer


@pytest.mark.parametrize(("name", "size", "options"), [
    ("portrait", PORTRAIT, PHONE), ("landscape", LANDSCAPE, PHONE), ("desktop", DESKTOP, {}),
])
def test_watch_page_fits_the_viewport(live: tuple[Any, str], chromium: Any, onair_server: OnairServer,
                                      shots: Path, name: str, size: tuple[int, int],
                                      options: dict[str, Any]) -> None:
    viewer = watch(chromium, onair_server, live[1], size, **options)
    check_layout(viewer, size, WATCH_IN_VIEW, WATCH_REACHABLE, f"watch {name}")
    shot(viewer, shots, f"phone-watch-{name}" if options else "desktop-watch")
    viewer.context.close()


def test_rotation_while_playing(live: tuple[Any, str], chromium: Any, onair_server: OnairServer,
                                shots: Path) -> None:
    """Portrait → landscape → portrait → landscape with the video playing: after each turn the
    layout holds and the picture keeps moving (the element is never torn down or left at zero
    size)."""
    viewer = watch(chromium, onair_server, live[1], PORTRAIT, **PHONE)
    before = viewer.evaluate("() => document.querySelector('#video').currentTime")
    for step, size in enumerate((LANDSCAPE, PORTRAIT, LANDSCAPE)):
        resize(viewer, size)
        where = f"watch rotated to {size[0]}×{size[1]} (turn {step + 1})"
        m = check_layout(viewer, size, WATCH_IN_VIEW, WATCH_REACHABLE, where)
        assert not m["video"]["paused"], f"{where}: the video paused"
        moving_picture(viewer)
    wait_until(lambda: viewer.evaluate("() => document.querySelector('#video').currentTime") > before + 1, 10,
               "the video's clock to run across the rotations")
    assert viewer.get_attribute("#player", "data-view") == "playing"
    viewer.context.close()


def test_studio_fits_phone_orientations_and_desktop(live: tuple[Any, str], shots: Path) -> None:
    """The seller's phone turned both ways, then a desktop-sized window: the preview letterboxes,
    Go live / Pause / Resume / End stay in view, the rest is reachable by scrolling down."""
    studio, _ = live
    for size, name in ((PORTRAIT, "portrait"), (LANDSCAPE, "landscape"), (DESKTOP, "desktop"),
                       (PORTRAIT, "portrait")):
        resize(studio, size)
        check_layout(studio, size, STUDIO_IN_VIEW, STUDIO_REACHABLE, f"studio {name}")
        shot(studio, shots, f"phone-studio-{name}" if name != "desktop" else "desktop-studio")
    assert studio.get_attribute("#status", "data-status") == "live"


@pytest.mark.parametrize(("name", "size", "options"), [
    ("portrait", PORTRAIT, PHONE), ("landscape", LANDSCAPE, PHONE), ("desktop", DESKTOP, {}),
])
def test_home_page_fits_the_viewport(live: tuple[Any, str], chromium: Any, onair_server: OnairServer,
                                     name: str, size: tuple[int, int], options: dict[str, Any]) -> None:
    """The home page signed out (the sign-in form) and signed in as a seller (the go-live form),
    with a live stream listed: no sideways scrolling, every control reachable."""
    home = phone_page(chromium, size, **options)
    home.goto(f"{onair_server.url}/")
    home.wait_for_selector(f"#live-list li[data-stream-id='{live[1]}']")
    check_layout(home, size, {}, HOME_REACHABLE, f"home {name}, signed out", video=False)
    sign_in(home, onair_server.url, "sam", "seller")
    home.wait_for_selector("#go-live-form input")
    home.wait_for_selector(f"#live-list li[data-stream-id='{live[1]}']")
    check_layout(home, size, {}, HOME_REACHABLE, f"home {name}, seller", video=False)
    home.context.close()
