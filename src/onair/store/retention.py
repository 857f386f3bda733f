"""Retention queries: each deletes at most one batch of rows, so a caller runs each in its own
short transaction and no lock is held for long.

Every query is driven by an index made for it (tables.py, migration 0003) and starts from the
oldest rows, so a pass costs what it deletes, not what the tables hold (tests/property/
test_query_plans.py checks the plans on both backends). Each DELETE repeats its condition on the
row it deletes: on PostgreSQL a row changed meanwhile (a viewer who came back) is re-checked
after the lock wait and kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from onair.store.tables import (
    agora_tokens,
    chat_messages,
    showcase_state,
    stream_sessions,
    stream_uids,
    stream_viewers,
)


def expired_tokens_query(cutoff: datetime, batch: int) -> Select[Any]:
    return (select(agora_tokens.c.id).where(agora_tokens.c.expires_at < cutoff)
            .order_by(agora_tokens.c.expires_at).limit(batch))


def left_viewers_query(cutoff: datetime, batch: int) -> Select[Any]:
    v = stream_viewers.c
    return (select(v.stream_id, v.user_id).where(v.left_at.is_not(None), v.left_at < cutoff)
            .order_by(v.left_at).limit(batch))


def unpurged_streams_query(cutoff: datetime, batch: int) -> Select[Any]:
    """Ended streams (ended before ``cutoff``) whose chat is still there, oldest end first."""
    s = stream_sessions.c
    return (select(s.id).where(s.status == "ended", s.chat_purged_at.is_(None),
                               s.ended_at < cutoff)
            # chat_purged_at is NULL throughout: naming it lets PostgreSQL read the order off
            # the index (it does not take IS NULL as an equality for ordering)
            .order_by(s.chat_purged_at, s.ended_at).limit(batch))


def stream_chat_query(stream_id: str, batch: int) -> Select[Any]:
    c = chat_messages.c
    return select(c.id).where(c.stream_id == stream_id).order_by(c.seq).limit(batch)


async def delete_expired_tokens(conn: AsyncConnection, cutoff: datetime, batch: int) -> int:
    ids = expired_tokens_query(cutoff, batch).scalar_subquery()
    result = await conn.execute(delete(agora_tokens).where(
        agora_tokens.c.id.in_(ids), agora_tokens.c.expires_at < cutoff))
    return int(result.rowcount or 0)


async def delete_left_viewers(conn: AsyncConnection, cutoff: datetime, batch: int) -> int:
    # Keys first, then deletes by primary key, one per stream: with the keys in a subquery, or
    # as a list of (stream, user) pairs, PostgreSQL scanned every due row per batch (100–650 ms
    # per batch of 1000 at 200k left viewers); `stream_id = :s AND user_id IN (…)` is an index
    # search of the primary key.
    v = stream_viewers.c
    users: dict[str, list[str]] = {}
    for stream_id, user_id in await conn.execute(left_viewers_query(cutoff, batch)):
        users.setdefault(stream_id, []).append(user_id)
    deleted = 0
    for stream_id, ids in users.items():
        result = await conn.execute(delete(stream_viewers).where(
            v.stream_id == stream_id, v.user_id.in_(ids), v.left_at.is_not(None), v.left_at < cutoff))
        deleted += int(result.rowcount or 0)
    return deleted


async def streams_to_purge(conn: AsyncConnection, cutoff: datetime, batch: int) -> list[str]:
    return [row.id for row in await conn.execute(unpurged_streams_query(cutoff, batch))]


async def delete_stream_chat(conn: AsyncConnection, stream_id: str, batch: int) -> int:
    """One batch of an ended stream's chat (the caller checked the stream is due)."""
    ids = stream_chat_query(stream_id, batch).scalar_subquery()
    result = await conn.execute(delete(chat_messages).where(
        chat_messages.c.id.in_(ids), chat_messages.c.stream_id == stream_id))
    return int(result.rowcount or 0)


async def mark_chat_purged(conn: AsyncConnection, stream_id: str, now: datetime) -> None:
    await conn.execute(update(stream_sessions).where(
        stream_sessions.c.id == stream_id, stream_sessions.c.status == "ended"
    ).values(chat_purged_at=now))
    # the pinned message's copy of a chat body goes with the chat (store/showcase.py)
    s = showcase_state.c
    await conn.execute(update(showcase_state).where(
        s.stream_id == stream_id, s.pinned_message_id.is_not(None)).values(
        version=s.version + 1, pinned_message_id=None, pinned_message_seq=None,
        pinned_message_sender=None, pinned_message_body=None, pinned_by=None, pinned_at=None,
        updated_at=now))


# --- the uid roster (stream_uids) of ended streams ----------------------------------------


def unrostered_streams_query(cutoff: datetime, batch: int) -> Select[Any]:
    """Ended streams (ended before ``cutoff``) whose uid roster is still there, oldest end first."""
    s = stream_sessions.c
    return (select(s.id).where(s.status == "ended", s.roster_purged_at.is_(None),
                               s.ended_at < cutoff)
            .order_by(s.roster_purged_at, s.ended_at).limit(batch))  # see unpurged_streams_query


def stream_roster_query(stream_id: str, batch: int) -> Select[Any]:
    u = stream_uids.c
    return select(u.user_id).where(u.stream_id == stream_id).order_by(u.user_id).limit(batch)


async def rosters_to_purge(conn: AsyncConnection, cutoff: datetime, batch: int) -> list[str]:
    return [row.id for row in await conn.execute(unrostered_streams_query(cutoff, batch))]


async def delete_stream_roster(conn: AsyncConnection, stream_id: str, batch: int) -> int:
    """One batch of an ended stream's uid roster: keys first, then a delete by primary key
    (``stream_id = :s AND user_id IN (…)``, an index search; see delete_left_viewers)."""
    users = list((await conn.execute(stream_roster_query(stream_id, batch))).scalars())
    if not users:
        return 0
    result = await conn.execute(delete(stream_uids).where(
        stream_uids.c.stream_id == stream_id, stream_uids.c.user_id.in_(users)))
    return int(result.rowcount or 0)


async def mark_roster_purged(conn: AsyncConnection, stream_id: str, now: datetime) -> None:
    await conn.execute(update(stream_sessions).where(
        stream_sessions.c.id == stream_id, stream_sessions.c.status == "ended"
    ).values(roster_purged_at=now))
