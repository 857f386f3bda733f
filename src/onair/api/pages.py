"""The pages: `/` (streams, go live), `/studio/{id}` (the seller), `/watch/{id}` (the buyer).

Each page is a static HTML shell plus ES modules under `/static`; the shell carries the client
configuration (the public `/api/v1/config` plus the browser policy settings of the `web` section)
as JSON, so a page needs no extra round trip before connecting.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import orjson
from fastapi import APIRouter, Path
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from onair.api.deps import Ctx
from onair.api.health import client_config
from onair.api.page_policy import page_headers
from onair.context import AppContext
from onair.topics import SIGNAL_TOPIC_TEMPLATE, STREAM_TOPIC_TEMPLATE
from onair.web import STATIC_DIR, TEMPLATES_DIR

router = APIRouter(tags=["pages"], include_in_schema=False)

CONFIG_MARK = "<!--ONAIR_CONFIG-->"
StreamId = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")

# Realtime topics the pages use (the hub authorizes them; see the realtime issue).
STREAM_TOPIC = STREAM_TOPIC_TEMPLATE
SIGNAL_TOPIC = SIGNAL_TOPIC_TEMPLATE


class SafeStaticFiles(StaticFiles):
    """StaticFiles whose odd paths are a 404, never a 500 or a 503.

    Starlette hands the decoded URL path to the OS: a NUL (``/static/x%00.js``) makes ``os.stat``
    raise ValueError, an over-long name or an unreadable entry an OSError that the error
    middleware would take for an outage. None of them can name a file we serve.
    """

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if "\x00" in path:
            return "", None
        try:
            return super().lookup_path(path)
        except (OSError, ValueError):
            return "", None


def static_files() -> StaticFiles:
    return SafeStaticFiles(directory=STATIC_DIR)


@lru_cache(maxsize=8)
def _shell(name: str) -> str:
    return (TEMPLATES_DIR / f"{name}.html").read_text(encoding="utf-8")


def web_policy(ctx: AppContext) -> dict[str, Any]:
    """The browser clients' timing and limits, from the `web` settings (ms for JS timers)."""
    s = ctx.settings
    ms = lambda seconds: int(seconds * 1000)
    return {
        "reconnect": {"baseMs": ms(s.web_reconnect_base), "capMs": ms(s.web_reconnect_cap),
                      "maxAttempts": s.web_reconnect_attempts,
                      "slowRetryMs": ms(s.web_reconnect_slow),
                      "heartbeatMs": ms(s.web_realtime_heartbeat),
                      "heartbeatTimeoutMs": ms(s.web_realtime_heartbeat_timeout),
                      "connectTimeoutMs": ms(s.web_realtime_heartbeat_timeout),
                      "rtt": {"degradedMs": ms(s.web_rtt_degraded), "poorMs": ms(s.web_rtt_poor)}},
        "media": {"firstFrameTimeoutMs": ms(s.web_media_timeout),
                  "agoraJoinTimeoutMs": ms(s.web_agora_join_timeout)},
        "chat_poll_ms": ms(s.web_chat_poll),
        "chat_verify_ms": ms(s.web_chat_verify),
        "chat_max_chars": s.chat_max_chars,
        "presence_heartbeat_ms": ms(s.heartbeat_interval),
        "local_max_viewers": s.web_local_max_viewers,
        "role_claim": s.jwt_app_role_claim,
        "stream_topic": STREAM_TOPIC,
        "signal_topic": SIGNAL_TOPIC,
    }


async def _render(name: str, ctx: AppContext, **extra: Any) -> HTMLResponse:
    config = {**(await client_config(ctx)), "web": web_policy(ctx), **extra}
    # JSON inside <script type="application/json">: escape "<" so no value can close the tag.
    payload = orjson.dumps(config).decode().replace("<", "\\u003c")
    html = _shell(name).replace(CONFIG_MARK, payload)
    headers = page_headers(config["media_mode"] == "agora", ctx.settings.web_content_security_policy,
                           ctx.settings.web_image_sources)
    return HTMLResponse(html, headers=headers)


@router.get("/", response_class=HTMLResponse)
async def home(ctx: Ctx) -> HTMLResponse:
    return await _render("home", ctx, page="home")


@router.get("/studio/{stream_id}", response_class=HTMLResponse)
async def studio(ctx: Ctx, stream_id: str = StreamId) -> HTMLResponse:
    return await _render("studio", ctx, page="studio", stream_id=stream_id)


@router.get("/watch/{stream_id}", response_class=HTMLResponse)
async def watch(ctx: Ctx, stream_id: str = StreamId) -> HTMLResponse:
    return await _render("watch", ctx, page="watch", stream_id=stream_id)
