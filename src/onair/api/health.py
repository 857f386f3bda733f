"""Liveness, readiness, metrics and the public client config."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from onair.api.deps import Ctx
from onair.api.openapi import problems
from onair.context import AppContext
from onair.errors import problem_response
from onair.metrics import render, sync
from onair.problems import NOT_READY, UNAUTHORIZED
from onair.store.streams import count_by_status

router = APIRouter(tags=["ops"])
config_router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def readiness(ctx: AppContext) -> dict[str, str]:
    """Each dependency: "ok" or why it is failing (both probes run at once)."""
    timeout = ctx.settings.db_timeout

    async def check(probe: Any) -> str:
        try:
            await asyncio.wait_for(probe(), timeout)
            return "ok"
        except Exception as exc:  # any failure means not ready; say which part
            return f"failing: {type(exc).__name__}"

    database, broker = await asyncio.gather(check(ctx.db.ping), check(ctx.broker.ping))
    return {"database": database, "broker": broker}


@router.get("/readyz")
async def readyz(ctx: Ctx) -> Response:
    checks = await readiness(ctx)
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    if ready:
        return Response(orjson.dumps(body), media_type="application/json")
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    return problem_response(NOT_READY(f"failing: {failing}", checks=checks))


def _check_metrics_token(ctx: AppContext, authorization: str | None) -> None:
    expected = ctx.settings.metrics_token
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.get_secret_value().encode()):
        raise UNAUTHORIZED("send `Authorization: Bearer <ONAIR_METRICS_TOKEN>`",
                           title="Metrics need a token",
                           headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


@router.get("/metrics", response_class=PlainTextResponse, responses=problems(401))
async def metrics(ctx: Ctx, request: Request) -> Response:
    _check_metrics_token(ctx, request.headers.get("authorization"))
    m = ctx.metrics
    checks = await readiness(ctx)
    for name, value in checks.items():
        m.ready.labels(name).set(1 if value == "ok" else 0)
    if checks["database"] == "ok":
        # Best effort: with the database failing, the scrape still answers (onair_ready says
        # why) and these gauges keep their last values.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ctx.settings.db_timeout):
                async with ctx.db.read() as conn:
                    counts = await count_by_status(conn)
                for status in ("scheduled", "live", "paused", "ended"):
                    m.streams.labels(status).set(counts.get(status, 0))
                m.viewers.set(await ctx.streams.active_viewers())
    sync(ctx)
    return Response(render(m), media_type="text/plain; version=0.0.4; charset=utf-8")


@config_router.get("/config")
async def client_config(ctx: Ctx) -> dict[str, object]:
    """What a browser client needs to connect (no secrets)."""
    s = ctx.settings
    return {
        "anon_key": ctx.anon_key,
        "realtime_url": "/realtime/v1",
        "heartbeat_interval": s.heartbeat_interval,
        "dev_auth": s.dev_auth_enabled,
        "agora_app_id": s.agora_app_id,
        "media_mode": "agora" if s.agora_app_id and s.agora_app_certificate else "local",
        "ice_servers": s.ice_servers,
    }
