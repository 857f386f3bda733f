"""Fixtures for the chat tests: a real app context on SQLite and on PostgreSQL.

Names are chat-specific so they never shadow the project-wide fixtures of tests/conftest.py.
PostgreSQL gets one scratch database per test session (every test works on fresh streams, so
tests do not see each other's chat); it is skipped when PostgreSQL is absent, unless
ONAIR_REQUIRE_SERVICES=1 makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from onair.auth.jwt import mint_token
from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.domain.identity import Principal, Role
from onair.domain.streams import Action
from onair.settings import Settings
from tests.apps import asgi_client, running_context

PG_URL = os.environ.get("ONAIR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
JWT_SECRET = "chat-tests-secret-" + "x" * 32


def _unavailable(reason: str) -> None:
    if os.environ.get("ONAIR_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (ONAIR_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def chat_pg_url() -> Iterator[str]:
    name = f"onair_chat_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        _unavailable(f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}")
    base, _, _ = PG_URL.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def chat_pgbouncer_db_url(pgbouncer_url: str, chat_pg_url: str) -> str:
    """The chat scratch database, reached through PgBouncer in transaction mode."""
    return f"{pgbouncer_url}/{chat_pg_url.rpartition('/')[2]}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("pgbouncer", marks=pytest.mark.postgres)])
def chat_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('chat-sqlite') / 'onair.db'}"
    fixture = "chat_pgbouncer_db_url" if request.param == "pgbouncer" else "chat_pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


def through_pooler(request: pytest.FixtureRequest) -> bool:
    callspec = getattr(request.node, "callspec", None)
    return callspec is not None and callspec.params.get("chat_db_url") == "pgbouncer"


def chat_test_settings(data_dir: Any, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir, "database_url": database_url, "jwt_secret": JWT_SECRET,
        "log_json": False, "chat_rate_burst": 100_000, "chat_rate_per_second": 1000.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def chat_settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  chat_db_url: str) -> Settings:
    pooled = {"db_prepared_statements": False} if through_pooler(request) else {}
    return chat_test_settings(tmp_path_factory.mktemp("chat-data"), chat_db_url, **pooled)


@pytest.fixture
def chat_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def chat_ctx(chat_settings: Settings, chat_clock: FakeClock) -> AsyncIterator[AppContext]:
    async with running_context(chat_settings, chat_clock) as ctx:
        yield ctx


@pytest.fixture
async def chat_client(chat_ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(chat_ctx, "http://test") as client:
        yield client


UserMaker = Callable[..., tuple[Principal, dict[str, str]]]


@pytest.fixture
def chat_user(chat_ctx: AppContext) -> UserMaker:
    """chat_user(role="buyer", user_id=None) → (principal, bearer headers)."""

    def make(role: str = "buyer", user_id: str | None = None) -> tuple[Principal, dict[str, str]]:
        user_id = user_id or f"{role}-{secrets.token_hex(4)}"
        token = mint_token(chat_ctx.jwt_secret, user_id, Role(role), 3600,
                           audience=chat_ctx.settings.jwt_audience,
                           app_role_claim=chat_ctx.settings.jwt_app_role_claim)
        return Principal(user_id, Role(role)), {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def chat_stream(chat_ctx: AppContext, chat_user: UserMaker) -> Callable[..., Any]:
    """await chat_stream() → (stream_id, seller principal, seller headers) of a live stream."""

    async def make() -> tuple[str, Principal, dict[str, str]]:
        seller, headers = chat_user("seller")
        stream = await chat_ctx.streams.create(seller, "chat test stream")
        await chat_ctx.streams.act(seller, stream.id, Action.START)
        return stream.id, seller, headers

    return make
