"""Connections and transactions for SQLite (embedded default) and PostgreSQL.

SQLite allows one writer at a time, and a deferred transaction that tries to upgrade to a write
lock after another writer committed fails at once instead of waiting. So on SQLite all writes go
through one connection that starts every transaction with ``BEGIN IMMEDIATE`` (writers queue on
the pool, never deadlock), while reads use a small pool of their own (WAL lets them run beside the
writer). On PostgreSQL both paths share one asyncpg pool.

Behind a pooler in transaction mode (PgBouncer < 1.21, Supavisor), consecutive statements of one
client may run on different server connections, so a statement prepared on one is missing (or
already there) on the next: with ``prepared_statements=False`` asyncpg keeps no statement cache and
names each statement uniquely, which is what SQLAlchemy documents for PgBouncer. A per-connection
``search_path`` cannot survive there either, so that mode refuses a schema.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Map plain `sqlite:`/`postgresql:` URLs onto the async drivers we ship."""

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
    return parsed.render_as_string(hide_password=False)


def _unique_statement_name() -> str:
    return f"__onair_{uuid.uuid4().hex}__"


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        timeout: float = 10.0,
        sqlite_synchronous: str = "NORMAL",
        schema: str | None = None,
        prepared_statements: bool = True,
    ) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.errors: dict[str, int] = {}  # kind -> failed statements or transactions (/metrics)
        self.capacity: dict[str, int] = {}  # pool -> most connections it opens
        if self.dialect == "sqlite":
            self._writer = self._sqlite_engine(timeout, sqlite_synchronous, immediate=True,
                                               pool_size=1)
            self._reader = self._sqlite_engine(timeout, sqlite_synchronous, immediate=False,
                                               pool_size=4)
            self.capacity = {"writer": 1, "reader": 4}
        else:
            connect_args: dict[str, Any] = {
                "timeout": timeout,
                "command_timeout": timeout * 3,
                "server_settings": {"search_path": schema} if schema else {},
            }
            url_for_engine: Any = self.url
            if not prepared_statements:
                if schema:
                    raise ValueError("a database schema needs a session-mode connection: "
                                     "it cannot be combined with prepared statements off")
                connect_args.update(statement_cache_size=0,
                                    prepared_statement_name_func=_unique_statement_name)
                url_for_engine = make_url(self.url).update_query_dict(
                    {"prepared_statement_cache_size": "0"})
            engine = create_async_engine(
                url_for_engine,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=timeout,
                pool_pre_ping=True,
                connect_args=connect_args,
            )
            self._writer = self._reader = engine
            self.capacity = {"main": 2 * pool_size}

    def _sqlite_engine(
        self, timeout: float, synchronous: str, *, immediate: bool, pool_size: int
    ) -> AsyncEngine:
        engine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=timeout * 3,
            connect_args={"timeout": timeout},
        )
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from the driver so we can say BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @property
    def engine(self) -> AsyncEngine:
        """The engine that writes (migrations, tests)."""
        return self._writer

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One read-write transaction: committed on exit, rolled back on error."""
        try:
            async with self._writer.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            self._count_error(exc)
            raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """One read-only snapshot."""
        try:
            async with self._reader.connect() as conn, conn.begin():
                yield conn
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            self._count_error(exc)
            raise

    def _count_error(self, exc: BaseException) -> None:
        if isinstance(exc, IntegrityError):
            kind = "integrity"
        elif isinstance(exc, (PoolTimeout, TimeoutError)):
            kind = "timeout"
        elif isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, OSError)):
            kind = "connection"  # unreachable, dropped, locked out
        elif isinstance(exc, DBAPIError):
            kind = "query"
        else:
            kind = "other"
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def pools_in_use(self) -> dict[str, int]:
        """Connections checked out of each pool now (SQLAlchemy's own count, no I/O)."""
        if self._reader is self._writer:
            return {"main": self._writer.pool.checkedout()}  # type: ignore[attr-defined]
        return {"writer": self._writer.pool.checkedout(),  # type: ignore[attr-defined]
                "reader": self._reader.pool.checkedout()}  # type: ignore[attr-defined]

    async def ping(self) -> None:
        async with self._reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
