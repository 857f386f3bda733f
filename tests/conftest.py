"""Shared fixtures: settings in a temp dir, a real database (SQLite and PostgreSQL), the app.

PostgreSQL tests use `ONAIR_TEST_POSTGRES_URL` (default: the local `test` database) with a fresh
schema per test. They skip when PostgreSQL is unreachable, except under
`ONAIR_REQUIRE_SERVICES=1` (CI), where they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from onair.auth.jwt import mint_token
from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.settings import Settings
from onair.store.db import async_url
from tests import socket_origins
from tests.apps import asgi_client, running_context

POSTGRES_URL = os.environ.get("ONAIR_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("ONAIR_REQUIRE_SERVICES") == "1"


def need(available: bool, reason: str) -> None:
    """Skip with ``reason`` unless CI requires every service, then fail."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def _port_open(url_host: str, port: int) -> bool:
    try:
        with socket.create_connection((url_host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    return _port_open(url.host or "127.0.0.1", url.port or 5432)


def need_redis() -> None:
    """Skip (or, under ONAIR_REQUIRE_SERVICES=1, fail) when the machine's Redis is not there."""
    from sqlalchemy.engine import make_url

    url = make_url(REDIS_URL)
    need(_port_open(url.host or "127.0.0.1", url.port or 6379),
         f"Redis not reachable at {REDIS_URL}")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def _create_schema(schema: str, drop: bool = False) -> None:
    engine = create_async_engine(async_url(POSTGRES_URL))
    async with engine.begin() as conn:
        if drop:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        else:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await engine.dispose()


# The suites that also run through PgBouncer in transaction mode (issue 11 §7); elsewhere the
# `pgbouncer` backend is deselected, which keeps the run short.
POOLED_SUITES = (
    "tests/integration/chat/",
    "tests/integration/test_streams_api.py",
    "tests/integration/test_tokens_api.py",
    "tests/integration/test_token_lifecycle.py",
    "tests/integration/test_tokens_concurrency.py",
    "tests/integration/test_pgbouncer.py",
)


@pytest.hookimpl(trylast=True)  # after pytest's own unraisable-exception hook, which it wraps
def pytest_configure(config: pytest.Config) -> None:
    socket_origins.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    keep, drop = [], []
    for item in items:
        pooled = "[pgbouncer" in item.nodeid or "-pgbouncer" in item.nodeid
        path = Path(str(item.path)).relative_to(root).as_posix()
        (drop if pooled and not path.startswith(POOLED_SUITES) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def pgbouncer_url() -> Iterator[str]:
    """A real PgBouncer in transaction mode in front of the test PostgreSQL."""
    need(shutil.which("pgbouncer") is not None, "pgbouncer not installed (Debian package)")
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    from tests.pgbouncer import PgBouncer

    with PgBouncer(POSTGRES_URL) as bouncer:
        yield bouncer.url


@pytest.fixture(params=["sqlite", "postgresql", "pgbouncer"])
async def backend(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[dict[str, Any]]:
    """Settings overrides for one database backend (fresh database or schema per test)."""
    if request.param == "sqlite":
        yield {"data_dir": data_dir}
        return
    if request.param == "pgbouncer":
        base = request.getfixturevalue("pgbouncer_url")
        request.applymarker(pytest.mark.postgres)
        from tests.pgbouncer import fresh_database

        async with fresh_database(POSTGRES_URL, base) as url:
            yield {"data_dir": data_dir, "database_url": url, "db_prepared_statements": False}
        return
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    request.applymarker(pytest.mark.postgres)
    schema = f"t_{secrets.token_hex(6)}"
    await _create_schema(schema)
    try:
        yield {"data_dir": data_dir, "database_url": POSTGRES_URL, "database_schema": schema}
    finally:
        await _create_schema(schema, drop=True)


@pytest.fixture
def settings(backend: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, jwt_secret="test-secret-" + "x" * 40, reaper_interval=3600,
                    **backend)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ctx(settings: Settings, clock: FakeClock) -> AsyncIterator[AppContext]:
    async with running_context(settings, clock) as context:
        yield context


@pytest.fixture
async def db(ctx: AppContext) -> Any:
    return ctx.db


@pytest.fixture
async def app_client(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(ctx, "http://onair.test") as client:
        yield client


UserFactory = Callable[..., tuple[str, dict[str, str]]]


@pytest.fixture
def make_user(ctx: AppContext, clock: FakeClock) -> UserFactory:
    """``make_user("seller")`` → (user_id, headers with a bearer token for that role)."""

    def factory(role: str = "buyer", user_id: str | None = None,
                ttl: float = 3600) -> tuple[str, dict[str, str]]:
        uid = user_id or f"{role}-{secrets.token_hex(4)}"
        token = mint_token(ctx.jwt_secret, uid, role, ttl, now=clock.now().timestamp())
        return uid, {"authorization": f"Bearer {token}"}

    return factory


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
