"""Queries behind Agora tokens: the ledger, stable uids and co-hosts.

The ledger keeps the SHA-256 of each token, never the token: enough to recognise and revoke it,
useless to anyone who reads the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from onair.store.tables import agora_tokens, stream_cohosts, stream_sessions, stream_uids

Pair = tuple[str, str]  # (stream_id, user_id)


@dataclass(frozen=True, slots=True)
class StreamFacts:
    id: str
    seller_id: str
    status: str


def _shared(query: Any) -> Any:
    # FOR SHARE on PostgreSQL: a demotion or stream end that commits while we issue waits for
    # our commit, so its revoking UPDATE sees the rows we insert. SQLite's single writer already
    # serialises us; SQLAlchemy renders nothing there.
    return query.with_for_update(read=True)


# The issuing path's statements are built once: SQLAlchemy memoizes a statement's cache key on
# the object, so reusing it skips rebuilding and re-keying the statement on every batch.
_STREAM_FACTS = _shared(
    select(stream_sessions.c.id, stream_sessions.c.seller_id, stream_sessions.c.status)
    .where(stream_sessions.c.id.in_(bindparam("ids", expanding=True)))
)
_COHOSTS = _shared(
    select(stream_cohosts.c.stream_id, stream_cohosts.c.user_id).where(
        stream_cohosts.c.stream_id.in_(bindparam("streams", expanding=True)),
        stream_cohosts.c.user_id.in_(bindparam("users", expanding=True)),
    )
)
_UIDS = select(stream_uids).where(
    stream_uids.c.stream_id.in_(bindparam("streams", expanding=True)),
    stream_uids.c.user_id.in_(bindparam("users", expanding=True)),
)
_INSERT_TOKEN = insert(agora_tokens)


def _split(pairs: set[Pair]) -> dict[str, list[str]]:
    return {"streams": sorted({s for s, _ in pairs}), "users": sorted({u for _, u in pairs})}


async def stream_facts(conn: AsyncConnection, stream_ids: Iterable[str]) -> dict[str, StreamFacts]:
    rows = await conn.execute(_STREAM_FACTS, {"ids": sorted(set(stream_ids))})
    return {r.id: StreamFacts(r.id, r.seller_id, r.status) for r in rows}


async def cohost_pairs(conn: AsyncConnection, pairs: Iterable[Pair]) -> set[Pair]:
    wanted = set(pairs)
    if not wanted:
        return set()
    rows = await conn.execute(_COHOSTS, _split(wanted))
    return {(r.stream_id, r.user_id) for r in rows} & wanted


async def uids_of(conn: AsyncConnection, pairs: Iterable[Pair]) -> dict[Pair, int]:
    wanted = set(pairs)
    if not wanted:
        return {}
    rows = await conn.execute(_UIDS, _split(wanted))
    return {(r.stream_id, r.user_id): int(r.uid) for r in rows if (r.stream_id, r.user_id) in wanted}


async def insert_uids_if_absent(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert (stream_id, user_id, uid) rows; a pair or uid taken meanwhile is skipped."""
    if not rows:
        return
    dialect = conn.dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await conn.execute(make(stream_uids).on_conflict_do_nothing(), list(rows))


async def insert_tokens(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(_INSERT_TOKEN, list(rows))


async def latest_role(conn: AsyncConnection, stream_id: str, user_id: str, kind: str) -> str | None:
    query = (
        select(agora_tokens.c.role)
        .where(
            agora_tokens.c.stream_id == stream_id,
            agora_tokens.c.user_id == user_id,
            agora_tokens.c.kind == kind,
        )
        .order_by(agora_tokens.c.issued_at.desc(), agora_tokens.c.id.desc())
        .limit(1)
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def revoke_user_tokens(
    conn: AsyncConnection, stream_id: str, user_id: str, role: str, now: datetime, reason: str
) -> int:
    result = await conn.execute(
        update(agora_tokens)
        .where(
            and_(
                agora_tokens.c.stream_id == stream_id,
                agora_tokens.c.user_id == user_id,
                agora_tokens.c.revoked_at.is_(None),
                agora_tokens.c.role == role,
            )
        )
        .values(revoked_at=now, revoke_reason=reason)
    )
    return int(result.rowcount or 0)


async def token_by_hash(conn: AsyncConnection, sha256_hex: str) -> Any:
    query = select(agora_tokens).where(agora_tokens.c.token_sha256 == sha256_hex)
    return (await conn.execute(query)).first()


async def tokens_of(conn: AsyncConnection, stream_id: str) -> list[Any]:
    query = select(agora_tokens).where(agora_tokens.c.stream_id == stream_id)
    return list(await conn.execute(query.order_by(agora_tokens.c.id)))


# --- co-hosts -------------------------------------------------------------------------------


async def cohosts_of(conn: AsyncConnection, stream_id: str) -> list[Any]:
    query = select(stream_cohosts).where(stream_cohosts.c.stream_id == stream_id)
    return list(await conn.execute(query.order_by(stream_cohosts.c.created_at)))


def record(row: Any) -> dict[str, Any]:
    """A row as a plain dict: its keys are SQLAlchemy ``quoted_name`` (a str subclass), which
    orjson refuses as dict keys, so an event carrying ``dict(row._mapping)`` was never sent."""
    return {str(key): value for key, value in row._mapping.items()}


async def get_cohost(conn: AsyncConnection, stream_id: str, user_id: str) -> Any:
    query = select(stream_cohosts).where(
        stream_cohosts.c.stream_id == stream_id, stream_cohosts.c.user_id == user_id
    )
    return (await conn.execute(query)).first()


async def count_cohosts(conn: AsyncConnection, stream_id: str) -> int:
    query = select(func.count()).where(stream_cohosts.c.stream_id == stream_id)
    return int((await conn.execute(query)).scalar_one())


async def insert_cohost(
    conn: AsyncConnection, stream_id: str, user_id: str, invited_by: str, now: datetime
) -> dict[str, Any]:
    record = {"stream_id": stream_id, "user_id": user_id, "invited_by": invited_by,
              "created_at": now}
    await conn.execute(insert(stream_cohosts).values(**record))
    return record


async def delete_cohost(conn: AsyncConnection, stream_id: str, user_id: str) -> bool:
    result = await conn.execute(
        delete(stream_cohosts).where(
            stream_cohosts.c.stream_id == stream_id, stream_cohosts.c.user_id == user_id
        )
    )
    return bool(result.rowcount)
