"""The `onair` command: serve, migrate, prune, keys, dev-token, settings."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from onair.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

# Only what `onair serve --workers N` needs in its supervisor is imported at the top: the
# supervisor lives as long as the server, and the app (FastAPI, SQLAlchemy, the services) imported
# there would hold ~100 MiB that no request ever uses. The workers and `serve-prepare` import it.

app = typer.Typer(help="onair: live-shopping streams, chat and realtime in one service.",
                  no_args_is_help=True, add_completion=False)


def _settings(**overrides: object) -> Settings:
    """Settings from the environment and the command line; a bad value is a one-line error per
    setting (naming its ONAIR_ variable) and exit status 2, not a traceback."""
    values = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as err:
        for error in err.errors(include_url=False):
            name = "ONAIR_" + "_".join(str(part) for part in error["loc"]).upper()
            typer.echo(f"onair: {name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000]")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Server processes on the port [default: ONAIR_WORKERS or 1]; more than one "
        "needs ONAIR_BROKER_URL")] = None,
) -> None:
    """Run REST + realtime + pages on one port (migrates the database first)."""
    from onair.logs import configure_logging

    settings = _settings(host=host, port=port, workers=workers)
    if settings.workers > 1 and not settings.broker_url:
        typer.echo(f"onair: --workers {settings.workers} needs ONAIR_BROKER_URL=redis://… so "
                   "that realtime events, presence and rate limits reach every worker", err=True)
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.log_json)
    if settings.workers > 1:
        raise typer.Exit(_supervise(settings))
    from onair.app import build_context, create_app
    from onair.store.migrate import upgrade

    ctx = build_context(settings)
    asyncio.run(_migrate_and_close(settings, upgrade))
    _print_banner(settings, ctx.anon_key)
    _run(create_app(settings, ctx=ctx), settings)
    typer.echo("onair stopped", err=True)


def _supervise(settings: Settings) -> int:
    """`serve --workers N`: prepare in a child (secret, migration, banner), then supervise."""
    from onair.workers import Supervisor, listen, worker_env

    overrides = {"host": settings.host, "port": settings.port, "workers": settings.workers}
    prepared = subprocess.run([sys.executable, "-m", "onair", "serve-prepare"],
                              env=worker_env(overrides), check=False)
    if prepared.returncode != 0:
        return prepared.returncode
    try:
        sock = listen(settings.host, settings.port)
    except OSError as exc:
        typer.echo(f"onair: cannot listen on {settings.host}:{settings.port}: "
                   f"{exc.strerror or exc}", err=True)
        return 1
    env = worker_env({"host": settings.host, "port": sock.getsockname()[1]})
    code = Supervisor(sock, settings.workers, env,
                      stop_timeout=settings.shutdown_timeout + 5).run()
    typer.echo("onair stopped", err=True)
    return code


@app.command("serve-prepare", hidden=True)
def serve_prepare() -> None:
    """What `onair serve --workers N` does once before its workers start: the JWT secret (so
    every worker reads the same), the migration and the banner — in a process of its own."""
    from onair.app import jwt_secret_of
    from onair.auth.jwt import mint_key
    from onair.logs import configure_logging
    from onair.store.migrate import upgrade

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = jwt_secret_of(settings)
    asyncio.run(_migrate_and_close(settings, upgrade))
    _print_banner(settings, mint_key(secret, "anon", settings.anon_key_ttl))


@app.command("serve-worker", hidden=True)
def serve_worker(fd: Annotated[int, typer.Option(help="Inherited listening socket")]) -> None:
    """One worker of `onair serve --workers N` (started by it, on the socket it listens on)."""
    from onair.app import build_context, create_app
    from onair.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    sock = socket.socket(fileno=fd)
    _run(create_app(settings, ctx=build_context(settings)), settings, sockets=[sock])


def _run(web: FastAPI, settings: Settings, sockets: list[socket.socket] | None = None) -> None:
    import uvicorn

    options: dict[str, Any] = {} if sockets else {"host": settings.host, "port": settings.port}
    # log_config=None: uvicorn's loggers keep our root handler (JSON lines) instead of its own
    config = uvicorn.Config(web, log_level="warning", log_config=None, access_log=False,
                            lifespan="on",
                            # typed int, but uvicorn waits with asyncio.wait_for/timeout: a float works
                            timeout_graceful_shutdown=settings.shutdown_timeout,  # type: ignore[arg-type]
                            **options, **_server_options(settings))
    from onair.server_process import OnairServer

    OnairServer(config, shutdown_timeout=settings.shutdown_timeout).run(sockets=sockets)


def _print_banner(settings: Settings, anon_key: str) -> None:
    base = settings.base_url
    typer.echo(f"onair {'SQLite ' + str(settings.data_dir) if settings.is_sqlite else 'PostgreSQL'}"
               f" · broker {'redis' if settings.broker_url else 'in-memory'}", err=True)
    typer.echo(f"  home      {base}/", err=True)
    typer.echo(f"  API docs  {base}/docs", err=True)
    typer.echo(f"  realtime  {base.replace('http', 'ws', 1)}/realtime/v1/websocket", err=True)
    typer.echo(f"  anon key  {anon_key}", err=True)
    if settings.dev_auth_enabled:
        warning = settings.dev_auth_warning()
        note = f"on — WARNING: {warning[1]}" if warning else "on, loopback clients only"
        typer.echo(f"  dev auth  POST {base}/api/v1/auth/dev-sign-in ({note})", err=True)
    if settings.workers > 1:
        typer.echo(f"  workers   {settings.workers} processes", err=True)


def _server_options(settings: Settings) -> dict[str, Any]:
    """Hook for the realtime layer's WebSocket protocol class (kept in one place)."""
    from onair.realtime.wiring import server_options

    return {"loop": "uvloop" if sys.platform != "win32" else "asyncio", **server_options(settings)}


async def _migrate_and_close(settings: Settings, upgrade_fn: object) -> None:
    from onair.store.db import Database

    db = Database(settings.resolved_database_url, schema=settings.database_schema,
                  prepared_statements=settings.db_prepared_statements)
    try:
        await upgrade_fn(db.engine)  # type: ignore[operator]
    finally:
        await db.close()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from onair.store.migrate import upgrade

    settings = _settings()
    asyncio.run(_migrate_and_close(settings, upgrade))
    typer.echo("database is up to date")


@app.command()
def prune(
    batch_size: Annotated[int | None, typer.Option(
        help="Rows per transaction [default: ONAIR_RETENTION_BATCH_SIZE]", min=1)] = None,
    chat_retention_days: Annotated[float | None, typer.Option(
        help="Also delete the chat of streams ended more than this many days ago "
        "[default: ONAIR_CHAT_RETENTION_DAYS; unset keeps chat]")] = None,
) -> None:
    """Delete expired token-ledger rows, left viewers and (if configured) old chat now.

    Short batched transactions, safe beside running servers; prints what was deleted as JSON.
    """
    import json

    from sqlalchemy.exc import SQLAlchemyError

    settings = _settings(retention_batch_size=batch_size, chat_retention_days=chat_retention_days)
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        done = asyncio.run(_prune(settings))
    except (OSError, SQLAlchemyError) as exc:  # an unreachable database: one line, not a traceback
        typer.echo(f"onair: prune failed: {type(exc).__name__}: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(done))


async def _prune(settings: Settings) -> dict[str, int]:
    from onair.domain.clock import SystemClock
    from onair.services.retention import Pruner, RetentionPolicy
    from onair.store.db import Database
    from onair.store.migrate import upgrade

    db = Database(settings.resolved_database_url, schema=settings.database_schema,
                  prepared_statements=settings.db_prepared_statements)
    try:
        await upgrade(db.engine)  # the prune queries need the retention indexes
        return await Pruner(db, SystemClock(), RetentionPolicy.of(settings)).prune()
    finally:
        await db.close()


@app.command()
def keys() -> None:
    """Print the anon key (for clients) and the service key (for trusted back ends)."""
    from onair.app import jwt_secret_of
    from onair.auth.jwt import mint_key

    settings = _settings()
    secret = jwt_secret_of(settings)
    typer.echo(f"anon_key={mint_key(secret, 'anon', settings.anon_key_ttl)}")
    typer.echo(f"service_key={mint_key(secret, 'service_role', settings.anon_key_ttl)}")


@app.command("dev-token")
def dev_token(
    user: Annotated[str, typer.Option(help="User id (the JWT `sub`)")],
    role: Annotated[str, typer.Option(help="seller, buyer, moderator or admin")] = "buyer",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 24 * 3600,
) -> None:
    """Mint a user JWT signed with this server's secret (local use)."""
    from onair.app import jwt_secret_of
    from onair.auth.jwt import mint_token
    from onair.domain.identity import Role

    if role not in ("seller", "buyer", "moderator", "admin"):
        raise typer.BadParameter("role must be seller, buyer, moderator or admin")
    settings = _settings()
    typer.echo(mint_token(jwt_secret_of(settings), user, Role(role), ttl,
                          audience=settings.jwt_audience,
                          app_role_claim=settings.jwt_app_role_claim))


@app.command("settings")
def settings_cmd() -> None:
    """Print the configuration table (Markdown) of every ONAIR_* setting."""
    from onair.settings import settings_table

    typer.echo(settings_table())


if __name__ == "__main__":
    app()
