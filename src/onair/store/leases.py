"""Lease rows: one holder at a time for jobs that several onair processes could run."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from onair.store.tables import leases


async def try_acquire(conn: AsyncConnection, name: str, holder: str, now: datetime,
                      duration: float) -> bool:
    """Take or renew lease ``name`` for ``holder`` unless someone else holds it unexpired."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    await conn.execute(insert(leases).values(name=name, holder=holder, expires_at=now)
                       .on_conflict_do_nothing(index_elements=["name"]))
    result = await conn.execute(
        update(leases)
        .where(leases.c.name == name,
               or_(leases.c.holder == holder, leases.c.expires_at <= now))
        .values(holder=holder, expires_at=now + timedelta(seconds=duration))
    )
    return result.rowcount == 1


async def release(conn: AsyncConnection, name: str, holder: str, now: datetime) -> None:
    await conn.execute(update(leases).where(leases.c.name == name, leases.c.holder == holder)
                       .values(expires_at=now))
