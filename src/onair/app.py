"""The onair ASGI application: wiring of settings, store, broker, services and routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI

from onair import __version__
from onair.api import auth as auth_api
from onair.api import chat as chat_api
from onair.api import health as health_api
from onair.api import pages as pages_api
from onair.api import reactions as reactions_api
from onair.api import showcase as showcase_api
from onair.api import streams as streams_api
from onair.api import telemetry as telemetry_api
from onair.api import tokens as tokens_api
from onair.api.hot_routes import HotRoutes
from onair.api.middleware import RequestContextMiddleware
from onair.api.openapi import install_openapi
from onair.auth.jwks import JwksCache
from onair.auth.jwt import JwtVerifier, mint_key
from onair.auth.keys import load_or_create_secret
from onair.broker import create_broker, create_buckets
from onair.broker.base import Broker
from onair.context import AppContext, BrokerFanIn
from onair.domain.clock import Clock, SystemClock
from onair.errors import install_problem_handlers
from onair.logs import outage_reason
from onair.metrics import Metrics, start_sync, stop_sync
from onair.realtime import rest as realtime_rest
from onair.realtime.service import STATE_KEY as REALTIME
from onair.realtime.wiring import build_realtime
from onair.services.chat import ChatService, send_bucket
from onair.services.events import EventPublisher
from onair.services.reaper import Reaper
from onair.services.retention import Pruner, RetentionPolicy
from onair.services.showcase import ShowcaseService
from onair.services.stream_cache import StreamCache
from onair.services.streams import StreamService
from onair.services.telemetry import TelemetryService
from onair.services.tokens import TokenService
from onair.settings import Settings
from onair.store.db import Database
from onair.store.migrate import upgrade

API_PREFIX = "/api/v1"
log = structlog.get_logger("onair")


def jwt_secret_of(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    return load_or_create_secret(settings.data_dir)


def jwks_of(settings: Settings) -> JwksCache | None:
    if not settings.jwks_url:
        return None
    return JwksCache(settings.jwks_url, fetch_timeout=settings.jwks_fetch_timeout,
                     min_interval=settings.jwks_min_refresh_interval,
                     negative_ttl=settings.jwks_negative_ttl, max_age=settings.jwks_max_age,
                     max_bytes=settings.jwks_max_bytes)


def build_context(settings: Settings, *, clock: Clock | None = None,
                  broker: Broker | None = None) -> AppContext:
    """Every long-lived object of one process; nothing is connected until `start_context`."""
    clock = clock or SystemClock()
    secret = jwt_secret_of(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size,
                  timeout=settings.db_timeout, sqlite_synchronous=settings.sqlite_synchronous,
                  schema=settings.database_schema,
                  prepared_statements=settings.db_prepared_statements)
    broker = broker or create_broker(settings.broker_url, settings)
    events = EventPublisher(broker)
    # aged on the app's clock: an entry's life ends when its first sanction does (clock time)
    cache = StreamCache(broker, ttl=settings.cache_ttl, max_streams=settings.cache_max_streams,
                        monotonic=lambda: clock.now().timestamp())
    streams = StreamService(db, events, clock, settings, cache)
    fan_in = BrokerFanIn()
    fan_in.consumers.append(cache)  # first: no other consumer of an event sees facts it changed
    context = AppContext(
        settings=settings, db=db, broker=broker, broker_fan_in=fan_in, events=events,
        clock=clock,
        jwt=JwtVerifier(secret, audience=settings.jwt_audience,
                        app_role_claim=settings.jwt_app_role_claim, leeway=settings.jwt_leeway,
                        jwks=jwks_of(settings), cache_size=settings.jwt_cache_size,
                        now=lambda: clock.now().timestamp()),
        jwt_secret=secret,
        anon_key=mint_key(secret, "anon", settings.anon_key_ttl),
        service_key=mint_key(secret, "service_role", settings.anon_key_ttl),
        metrics=Metrics(), streams=streams,
        reaper=Reaper(db, streams, clock, interval=settings.reaper_interval,
                      lease_seconds=settings.reaper_lease,
                      pruner=Pruner(db, clock, RetentionPolicy.of(settings))),
        chat=ChatService(settings, db, events, clock, buckets=create_buckets(
            settings.broker_url, send_bucket(settings), name="chat-send",
            max_tracked=settings.chat_rate_tracked_users, settings=settings), streams=streams),
        tokens=TokenService(db, events, clock, settings, streams),
        telemetry=TelemetryService(settings),
        showcase=ShowcaseService(db, events, clock, settings),
    )
    context.chat.message_listeners.append(context.showcase.message_changed)  # the pinned message follows
    realtime = build_realtime(context)
    cache.listeners.append(realtime.authorizer.invalidate)
    return context


def warn_about_exposure(settings: Settings) -> None:
    """Loud lines at start for the settings that make this server unsafe to expose."""
    warning = settings.dev_auth_warning()
    if warning is not None:
        level, message = warning
        getattr(log, level)("dev_auth_enabled", detail=message)
    if settings.metrics_token is None and not settings.binds_loopback:
        log.warning("metrics_public", detail=f"/metrics answers anyone who reaches "
                    f"{settings.host}:{settings.port}; set ONAIR_METRICS_TOKEN to require a bearer "
                    "token")


async def start_context(ctx: AppContext, *, migrate: bool = True, reaper: bool = True) -> None:
    warn_about_exposure(ctx.settings)
    if migrate:
        await upgrade(ctx.db.engine)
    if ctx.jwt.jwks is not None:
        ctx.jwt.jwks.start()  # in the background: a slow key server does not hold up the start
    await ctx.broker.start(ctx.broker_fan_in)
    await ctx.streams.cache.start()
    await ctx.chat.start()
    await ctx.realtime.start()
    if reaper:
        ctx.reaper.start()
    start_sync(ctx, ctx.settings.metrics_sync_interval)


async def stop_context(ctx: AppContext) -> None:
    """Stop in dependency order: queued chat commits and their events go out before the broker
    and the database close. One step failing does not skip the next; a step still running at the
    stop deadline (ONAIR_SHUTDOWN_TIMEOUT, enforced by the server) is named in the log."""
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("metrics", lambda: stop_sync(ctx)), ("reaper", ctx.reaper.stop), ("realtime", ctx.realtime.stop),
        ("reactions", ctx.reactions.stop),
        ("tokens", ctx.tokens.close), ("chat", ctx.chat.close), ("broker", ctx.broker.close),
        ("database", ctx.db.close),
    ]
    if ctx.jwt.jwks is not None:
        steps.append(("jwks", ctx.jwt.jwks.close))
    for name, step in steps:
        try:
            await step()
        except asyncio.CancelledError:
            log.warning("stop_cancelled", step=name)
            raise
        except Exception as exc:
            reason = outage_reason(exc)
            if reason is not None:
                log.warning("stop_failed", step=name, reason=reason)
            else:
                log.error("stop_failed", step=name, exc_info=exc)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               broker: Broker | None = None, run_reaper: bool = True,
               ctx: AppContext | None = None, hot_routes: bool = True) -> FastAPI:
    """The app. ``hot_routes=False`` leaves even the hottest requests to FastAPI's routing
    (for the test that checks both answer the same)."""
    settings = settings or Settings()
    context = ctx or build_context(settings, clock=clock, broker=broker)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await start_context(context, reaper=run_reaper)
        try:
            yield {REALTIME: context.realtime}  # uvicorn hands it to the ws protocol
        finally:
            await stop_context(context)

    app = FastAPI(title="onair", version=__version__, lifespan=lifespan,
                  docs_url="/docs", openapi_url="/openapi.json")
    app.state.ctx = context
    install_problem_handlers(app)
    install_openapi(app, API_PREFIX)
    if hot_routes:
        app.add_middleware(HotRoutes, ctx=context, routes=[
            *chat_api.hot_routes(API_PREFIX), *tokens_api.hot_routes(API_PREFIX)])
    app.add_middleware(RequestContextMiddleware, metrics=context.metrics,
                       max_body_bytes=settings.max_body_bytes)

    api = APIRouter(prefix=API_PREFIX)
    # Chat first: routes are matched in order and a chat send is the most frequent request.
    api.include_router(chat_api.router)
    api.include_router(auth_api.router)
    api.include_router(streams_api.router)
    api.include_router(showcase_api.router)
    api.include_router(reactions_api.router)
    api.include_router(tokens_api.router)
    api.include_router(health_api.config_router)
    api.include_router(telemetry_api.router)
    app.include_router(api)
    app.include_router(health_api.router)
    app.include_router(realtime_rest.router)
    app.include_router(pages_api.router)
    app.mount("/static", pages_api.static_files(), name="static")
    return app
