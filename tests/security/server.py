"""A real onair server in this process (uvicorn + the realtime protocol class, as `onair serve`
runs it), so a test can attack it over TCP and still look at its internal tables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from onair.app import create_app
from onair.auth.jwt import mint_token
from onair.context import AppContext
from onair.realtime.service import RealtimeService
from onair.realtime.wiring import server_options
from onair.settings import Settings


@dataclass
class LiveServer:
    url: str
    ctx: AppContext
    server: uvicorn.Server

    @property
    def realtime(self) -> RealtimeService:
        return self.ctx.realtime

    @property
    def anon_key(self) -> str:
        return str(self.ctx.anon_key)

    def ws_url(self, apikey: str | None = None, vsn: str = "2.0.0") -> str:
        base = self.url.replace("http", "ws", 1)
        return f"{base}/realtime/v1/websocket?apikey={apikey or self.anon_key}&vsn={vsn}"

    def token(self, user: str, role: str = "buyer", ttl: float = 3600, now: float | None = None) -> str:
        return mint_token(self.ctx.jwt_secret, user, role, ttl, now=now)


@asynccontextmanager
async def live_server(settings: Settings, port: int) -> AsyncIterator[LiveServer]:
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning",
                            access_log=False, **server_options(settings))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield LiveServer(f"http://127.0.0.1:{port}", app.state.ctx, server)
    finally:
        server.should_exit = True
        await task


def realtime_tables(service: RealtimeService) -> dict[str, Any]:
    """Sizes of every map of the realtime layer keyed by client input."""
    hub = service.hub
    return {
        "clients": len(hub.clients),
        "topics": len(hub.topics),
        "members": sum(len(t.members) for t in hub.topics.values()),
        "presence": sum(len(t.presence) for t in hub.topics.values()),
        "users": len(hub.users),
        "ips": len(getattr(hub, "ips", {})),
        "subs": len(hub.changes),
        "change_tables": len(hub.changes._tables),
        "broker_refs": len(hub.broker_refs),
        "interested": len(hub._interested),  # streams read, for re-authorization
        "stream_versions": len(service.events._stream_versions),
        "budgets": sum(len(getattr(service.dispatcher, b, ())) for b in ("user_budget", "topic_budget")),
    }
