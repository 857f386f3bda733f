"""Queries on streams, their transitions and their viewers."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from onair.domain.streams import Status, Stream
from onair.store.tables import (
    agora_tokens,
    chat_sanctions,
    stream_cohosts,
    stream_sessions,
    stream_transitions,
    stream_viewers,
)

_STREAM_FIELDS = [f.name for f in fields(Stream)]


def to_stream(row: Any) -> Stream:
    values = {name: getattr(row, name) for name in _STREAM_FIELDS}
    values["status"] = Status(values["status"])
    return Stream(**values)


def to_record(stream: Stream) -> dict[str, Any]:
    record = asdict(stream)
    record["status"] = stream.status.value
    return record


async def insert_stream(conn: AsyncConnection, stream: Stream) -> None:
    await conn.execute(insert(stream_sessions).values(**to_record(stream)))


async def get_stream(conn: AsyncConnection, stream_id: str, *, lock: bool = False) -> Stream | None:
    query = select(stream_sessions).where(stream_sessions.c.id == stream_id)
    if lock:
        query = query.with_for_update()  # rendered on PostgreSQL; SQLite's writer lock covers it
    row = (await conn.execute(query)).first()
    return to_stream(row) if row is not None else None


def list_query(*, status: Status | None, seller_id: str | None, before_id: str | None,
               limit: int) -> Select[Any]:
    query = select(stream_sessions).order_by(stream_sessions.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(stream_sessions.c.status == status.value)
    if seller_id is not None:
        query = query.where(stream_sessions.c.seller_id == seller_id)
    if before_id is not None:
        query = query.where(stream_sessions.c.id < before_id)
    return query


async def list_streams(
    conn: AsyncConnection,
    *,
    status: Status | None,
    seller_id: str | None,
    before_id: str | None,
    limit: int,
) -> list[Stream]:
    query = list_query(status=status, seller_id=seller_id, before_id=before_id, limit=limit)
    return [to_stream(row) for row in await conn.execute(query)]


async def update_if_version(conn: AsyncConnection, stream: Stream, seen_version: int) -> bool:
    """Write ``stream`` unless someone changed the row since ``seen_version`` was read."""
    values = to_record(stream)
    del values["id"]
    result = await conn.execute(
        update(stream_sessions)
        .where(stream_sessions.c.id == stream.id, stream_sessions.c.version == seen_version)
        .values(**values)
    )
    return result.rowcount == 1


async def insert_transition(
    conn: AsyncConnection, before: Stream, after: Stream, actor_id: str | None,
    reason: str | None,
) -> None:
    await conn.execute(
        insert(stream_transitions).values(
            stream_id=after.id, version=after.version, from_status=before.status.value,
            to_status=after.status.value, actor_id=actor_id, reason=reason, at=after.updated_at,
        )
    )


async def transitions_of(conn: AsyncConnection, stream_id: str) -> list[Any]:
    query = (select(stream_transitions).where(stream_transitions.c.stream_id == stream_id)
             .order_by(stream_transitions.c.version))
    return list(await conn.execute(query))


def hostless_query(cutoff: datetime) -> Select[Any]:
    return select(stream_sessions.c.id).where(
        stream_sessions.c.status == Status.LIVE.value,
        stream_sessions.c.last_host_heartbeat_at <= cutoff,
    )


def paused_since_query(cutoff: datetime) -> Select[Any]:
    return select(stream_sessions.c.id).where(
        stream_sessions.c.status == Status.PAUSED.value, stream_sessions.c.paused_at <= cutoff
    )


async def live_streams_without_host(conn: AsyncConnection, cutoff: datetime) -> list[str]:
    return [row.id for row in await conn.execute(hostless_query(cutoff))]


async def streams_paused_since(conn: AsyncConnection, cutoff: datetime) -> list[str]:
    return [row.id for row in await conn.execute(paused_since_query(cutoff))]


async def touch_host(conn: AsyncConnection, stream_id: str, now: datetime) -> None:
    """Record the host's heartbeat on a stream that is live or paused."""
    await conn.execute(update(stream_sessions).where(
        stream_sessions.c.id == stream_id,
        stream_sessions.c.status.in_([Status.LIVE.value, Status.PAUSED.value]),
    ).values(last_host_heartbeat_at=now))


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    query = select(stream_sessions.c.status, func.count()).group_by(stream_sessions.c.status)
    # not dict(result): a Result has .keys(), so dict() would read it as a mapping of columns
    return {status: count for status, count in await conn.execute(query)}  # noqa: C416


async def active_viewers(conn: AsyncConnection) -> int:
    query = select(func.coalesce(func.sum(stream_sessions.c.viewer_count), 0)).where(
        stream_sessions.c.status.in_([Status.LIVE.value, Status.PAUSED.value]))
    return int((await conn.execute(query)).scalar_one())


# --- viewers ---------------------------------------------------------------------------------

def viewer_record(row: Any) -> dict[str, Any]:
    return {"stream_id": row.stream_id, "user_id": row.user_id, "joined_at": row.joined_at,
            "last_heartbeat_at": row.last_heartbeat_at, "left_at": row.left_at}


async def get_viewer(conn: AsyncConnection, stream_id: str, user_id: str) -> Any:
    query = select(stream_viewers).where(
        stream_viewers.c.stream_id == stream_id, stream_viewers.c.user_id == user_id
    )
    return (await conn.execute(query)).first()


async def upsert_present_viewer(
    conn: AsyncConnection, stream_id: str, user_id: str, now: datetime, existing: Any
) -> None:
    if existing is None:
        await conn.execute(insert(stream_viewers).values(
            stream_id=stream_id, user_id=user_id, joined_at=now, last_heartbeat_at=now))
        return
    values: dict[str, Any] = {"last_heartbeat_at": now, "left_at": None}
    if existing.left_at is not None:
        values["joined_at"] = now
    result = await conn.execute(update(stream_viewers).where(
        stream_viewers.c.stream_id == stream_id, stream_viewers.c.user_id == user_id
    ).values(**values))
    if result.rowcount == 0:  # retention deleted the left row since we read it
        await conn.execute(insert(stream_viewers).values(
            stream_id=stream_id, user_id=user_id, joined_at=now, last_heartbeat_at=now))


async def mark_left(conn: AsyncConnection, stream_id: str, user_ids: list[str],
                    now: datetime) -> None:
    if not user_ids:  # a stream ending with nobody present: no statement at all
        return
    await conn.execute(update(stream_viewers).where(
        stream_viewers.c.stream_id == stream_id, stream_viewers.c.user_id.in_(user_ids),
        stream_viewers.c.left_at.is_(None),
    ).values(left_at=now))


async def present_viewers(conn: AsyncConnection, stream_id: str) -> list[str]:
    query = select(stream_viewers.c.user_id).where(
        stream_viewers.c.stream_id == stream_id, stream_viewers.c.left_at.is_(None))
    return [row.user_id for row in await conn.execute(query)]


async def count_present(conn: AsyncConnection, stream_id: str) -> int:
    query = select(func.count()).select_from(stream_viewers).where(
        stream_viewers.c.stream_id == stream_id, stream_viewers.c.left_at.is_(None))
    return int((await conn.execute(query)).scalar_one())


def stale_viewers_query(cutoff: datetime) -> Select[Any]:
    return select(stream_viewers.c.stream_id, stream_viewers.c.user_id).where(
        stream_viewers.c.left_at.is_(None), stream_viewers.c.last_heartbeat_at <= cutoff)


async def stale_viewers(conn: AsyncConnection, cutoff: datetime) -> list[tuple[str, str]]:
    return [(row.stream_id, row.user_id)
            for row in await conn.execute(stale_viewers_query(cutoff))]


async def set_viewer_counts(conn: AsyncConnection, stream_id: str, count: int) -> tuple[int, int]:
    """Store the present count and raise the peak; returns (count, peak)."""
    await conn.execute(update(stream_sessions).where(stream_sessions.c.id == stream_id).values(
        viewer_count=count,
        peak_viewers=func.max(stream_sessions.c.peak_viewers, count)
        if conn.dialect.name == "sqlite" else func.greatest(stream_sessions.c.peak_viewers, count),
    ))
    peak = (await conn.execute(select(stream_sessions.c.peak_viewers).where(
        stream_sessions.c.id == stream_id))).scalar_one()
    return count, int(peak)


async def revoke_stream_tokens(conn: AsyncConnection, stream_id: str, now: datetime,
                               reason: str) -> int:
    """Mark every unrevoked Agora token of the stream revoked (stream end)."""
    result = await conn.execute(update(agora_tokens).where(
        and_(agora_tokens.c.stream_id == stream_id, agora_tokens.c.revoked_at.is_(None))
    ).values(revoked_at=now, revoke_reason=reason))
    return int(result.rowcount or 0)


async def cohost_ids(conn: AsyncConnection, stream_id: str) -> set[str]:
    query = select(stream_cohosts.c.user_id).where(stream_cohosts.c.stream_id == stream_id)
    return set((await conn.execute(query)).scalars().all())


async def active_sanctions(conn: AsyncConnection, stream_id: str,
                           now: datetime) -> list[tuple[str, str, datetime | None]]:
    """(user, kind, until) of every sanction in force in the stream right now."""
    s = chat_sanctions.c
    query = select(s.user_id, s.kind, s.until).where(
        s.stream_id == stream_id, s.lifted_at.is_(None), or_(s.until.is_(None), s.until > now))
    return [(row.user_id, row.kind, row.until) for row in await conn.execute(query)]


async def banned_ids(conn: AsyncConnection, stream_id: str, now: datetime) -> set[str]:
    """Users banned from the stream's chat right now (the sanctions index serves it)."""
    s = chat_sanctions.c
    query = select(s.user_id).where(
        s.stream_id == stream_id, s.kind == "ban", s.lifted_at.is_(None),
        or_(s.until.is_(None), s.until > now))
    return set((await conn.execute(query)).scalars().all())
