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
