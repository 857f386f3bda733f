"""Helpers for driving the pages: sign-in, video sampling, chat reading."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# Draw the <video> into a 32×18 canvas and return size, mean/std of luminance and the samples
# (the fake camera: mean ≈ 85–95, std ≈ 20–30; black: 0/0).
FRAME_STATS = """() => {
  const v = document.querySelector('#player video, #preview');
  if (!v || !v.videoWidth || !v.videoHeight) return null;
  const c = document.createElement('canvas'); c.width = 32; c.height = 18;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, 32, 18);
  const d = g.getImageData(0, 0, 32, 18).data; const ys = [];
  for (let i = 0; i < d.length; i += 4) ys.push(0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]);
  const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
  const std = Math.sqrt(ys.reduce((a, y) => a + (y - mean) ** 2, 0) / ys.length);
  return {width: v.videoWidth, height: v.videoHeight, mean, std, ys};
}"""


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def click_while_shown(page: Any, selector: str, timeout_ms: int = 2000) -> bool:
    """Click a control that may hide itself at any moment (the lost-connection banner goes away
    when an automatic retry gets through): True if it was clicked, False if it was gone first.

    A plain `page.click` would wait its full timeout for the hidden control to come back."""
    if not page.is_visible(selector):
        return False
    try:
        page.click(selector, timeout=timeout_ms)
    except PlaywrightTimeoutError:
        if page.is_visible(selector):
            raise
        return False
    return True


def sign_in(page: Any, base: str, user: str, role: str) -> None:
    page.goto(f"{base}/")
    page.fill("#sign-in-form input[name=user]", user)
    page.select_option("#sign-in-form select[name=role]", role)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#session button")


def view_of(page: Any) -> str:
    return str(page.get_attribute("#player", "data-view"))


def wait_view(page: Any, view: str, timeout: float = 20.0) -> None:
    wait_until(lambda: view_of(page) == view, timeout, f"view {view!r} on {page.url}")


def moving_picture(page: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Wait for decoded video that is not black and changes between two samples."""

    def sample() -> dict[str, Any] | None:
        first = page.evaluate(FRAME_STATS)
        if not first or first["mean"] < 10 or first["std"] < 5:
            return None
        time.sleep(0.4)
        second = page.evaluate(FRAME_STATS)
        if not second:
            return None
        diff = sum(abs(a - b) for a, b in zip(first["ys"], second["ys"])) / len(first["ys"])
        return {**second, "frame_diff": diff} if diff > 0.5 else None

    stats = wait_until(sample, timeout, f"a moving, non-black picture on {page.url}", every=0.3)
    assert stats["width"] > 0 and stats["height"] > 0
    return stats


def chat_lines(page: Any) -> list[tuple[int, str]]:
    items = page.eval_on_selector_all(
        ".chat-log li[data-seq]",
        "els => els.map(e => [Number(e.dataset.seq), e.querySelector('.body').textContent])")
    return [(int(seq), body) for seq, body in items]


def send_chat(page: Any, text: str) -> None:
    page.fill(".chat-form input", text)
    page.press(".chat-form input", "Enter")


def shot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"))
