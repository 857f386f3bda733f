"""A running app context and an in-process HTTP client on it, shared by the test fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from onair.app import build_context, create_app, start_context, stop_context
from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.settings import Settings


@asynccontextmanager
async def running_context(settings: Settings, clock: FakeClock) -> AsyncIterator[AppContext]:
    """Everything started but the reaper (tests call `reap()` themselves)."""
    context = build_context(settings, clock=clock)
    await start_context(context, reaper=False)
    try:
        yield context
    finally:
        await stop_context(context)


@asynccontextmanager
async def asgi_client(ctx: AppContext, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ctx.settings, ctx=ctx, run_reaper=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=base_url) as client:
        yield client


@asynccontextmanager
async def hot_and_plain_clients(
    ctx: AppContext, base_url: str = "http://test"
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of two apps on one context: the production app (hot routes answered by
    HotRoutes) and one whose every request goes through FastAPI's router — for parity tests.
    App exceptions become responses, as under a server, so a 500 can be compared too."""
    hot = create_app(ctx.settings, ctx=ctx, run_reaper=False)
    plain = create_app(ctx.settings, ctx=ctx, run_reaper=False, hot_routes=False)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=hot, raise_app_exceptions=False),
                          base_url=base_url) as hot_client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=plain, raise_app_exceptions=False),
                          base_url=base_url) as plain_client,
    ):
        yield hot_client, plain_client


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Status, headers but the request id, body: what two equivalent answers share."""
    headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, headers, response.content
