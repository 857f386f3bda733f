"""Queries on chat messages, sanctions and a stream's chat settings.

Every function takes the connection of a transaction the chat service opened; none commits.
Set-based where the group commit needs it: one statement per batch, not one per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from onair.domain.chat import Sanction
from onair.store.tables import chat_messages, chat_sanctions, stream_sessions


@dataclass(frozen=True)
class Message:
    id: str
    stream_id: str
    seq: int
    sender_id: str
    client_msg_id: str
    body: str
    client_sent_at: datetime | None
    created_at: datetime
    edited_at: datetime | None
    edited_by: str | None
    deleted_at: datetime | None
    deleted_by: str | None
    # SHA-256 of the normalized body of the original send: a retry is compared with it, so an
    # edit or a delete never turns a retry of the original into a 409.
    sent_body_sha256: str

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def record(self) -> dict[str, Any]:
        """The row as events carry it (postgres_changes ``record``): public columns only."""
        # Not dataclasses.asdict: it deep-copies every value, a hot spot of the send path.
        return {name: getattr(self, name) for name in _PUBLIC}

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(Message.__dataclass_fields__)
_PUBLIC = tuple(name for name in _FIELDS if name != "sent_body_sha256")
_COLUMNS = [chat_messages.c[name] for name in _FIELDS]


def _to_message(row: Any) -> Message:
    return Message(*row)  # selected as _COLUMNS, in field order (no per-row mapping)


@dataclass(frozen=True)
class ChatStream:
    """What the send path needs to know about a stream, read under its row lock."""

    id: str
    seller_id: str
    status: str
    slow_mode_seconds: int
    last_chat_seq: int


async def lock_streams(conn: AsyncConnection, stream_ids: Iterable[str]) -> dict[str, ChatStream]:
    """Read and lock the streams a batch writes to, in id order (no deadlock between writers).

    The row lock serializes seq assignment across processes on PostgreSQL (SQLite's writer lock
    already does). It also means the stream cannot end between this read and the commit.
    """
    ids = sorted(set(stream_ids))
    query = (
        select(
            stream_sessions.c.id,
            stream_sessions.c.seller_id,
            stream_sessions.c.status,
            stream_sessions.c.slow_mode_seconds,
            stream_sessions.c.last_chat_seq,
        )
        .where(stream_sessions.c.id.in_(ids))
        .order_by(stream_sessions.c.id)
        .with_for_update()
    )
    return {row.id: ChatStream(**row._mapping) for row in await conn.execute(query)}


async def get_stream(conn: AsyncConnection, stream_id: str) -> ChatStream | None:
    query = select(
        stream_sessions.c.id,
        stream_sessions.c.seller_id,
        stream_sessions.c.status,
        stream_sessions.c.slow_mode_seconds,
        stream_sessions.c.last_chat_seq,
    ).where(stream_sessions.c.id == stream_id)
    row = (await conn.execute(query)).first()
    return ChatStream(**row._mapping) if row is not None else None


async def set_last_seqs(conn: AsyncConnection, last_seqs: dict[str, int]) -> None:
    # One plain statement per stream (a batch rarely spans more than one): cheaper than the
    # driver's executemany for a single row.
    for stream_id, seq in sorted(last_seqs.items()):
        await conn.execute(
            update(stream_sessions)
            .where(stream_sessions.c.id == stream_id)
            .values(last_chat_seq=seq)
        )


async def find_by_client_ids(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], Message]:
    """Messages already stored for these (stream_id, sender_id, client_msg_id) keys.

    The keys travel as one JSON parameter, so the statement text is the same for every batch
    size (prepared once on PostgreSQL) and each key is one probe of the idempotency index.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        keyset = "SELECT k->>0, k->>1, k->>2 FROM jsonb_array_elements(CAST(:keys AS jsonb)) AS k"
    else:
        keyset = "SELECT value->>0, value->>1, value->>2 FROM json_each(:keys)"
    query = select(*_COLUMNS).where(
        text(f"(stream_id, sender_id, client_msg_id) IN ({keyset})").bindparams(
            keys=orjson.dumps(wanted).decode()
        )
    )
    found: dict[tuple[str, str, str], Message] = {}
    for row in await conn.execute(query):
        message = _to_message(row)
        found[(message.stream_id, message.sender_id, message.client_msg_id)] = message
    return found


async def active_sanctions(
    conn: AsyncConnection, stream_ids: Iterable[str], now: datetime
) -> dict[tuple[str, str], list[Sanction]]:
    """Running mutes and bans in these streams, by (stream_id, user_id).

    Per stream, not per sender: a stream has a handful of running sanctions at most, and this
    keeps the statement the same whatever the batch holds.
    """
    ids = sorted(set(stream_ids))
    query = select(
        chat_sanctions.c.stream_id, chat_sanctions.c.user_id, chat_sanctions.c.kind,
        chat_sanctions.c.until, chat_sanctions.c.reason,
    ).where(
        chat_sanctions.c.stream_id.in_(ids),
        chat_sanctions.c.lifted_at.is_(None),
        or_(chat_sanctions.c.until.is_(None), chat_sanctions.c.until > now),
    )
    found: dict[tuple[str, str], list[Sanction]] = {}
    for row in await conn.execute(query):
        found.setdefault((row.stream_id, row.user_id), []).append(
            Sanction(kind=row.kind, until=row.until, reason=row.reason)
        )
    return found


async def last_sent_at(
    conn: AsyncConnection, stream_id: str, sender_ids: Iterable[str]
) -> dict[str, datetime]:
    """When each sender last sent in this stream (slow mode); one grouped query."""
    senders = list(set(sender_ids))
    if not senders:
        return {}
    query = (
        select(chat_messages.c.sender_id, func.max(chat_messages.c.created_at).label("at"))
        .where(chat_messages.c.stream_id == stream_id, chat_messages.c.sender_id.in_(senders))
        .group_by(chat_messages.c.sender_id)
    )
    # max() over a TypeDecorator column comes back raw on SQLite: convert through the type.
    result_type: Any = chat_messages.c.created_at.type  # a TypeDecorator (UTCDateTime)
    dialect = conn.dialect
    out: dict[str, datetime] = {}
    for row in await conn.execute(query):
        value = result_type.process_result_value(row.at, dialect)
        if value is not None:
            out[row.sender_id] = value
    return out


async def insert_messages(conn: AsyncConnection, messages: Sequence[Message]) -> None:
    """Insert a batch with one statement of constant text (the group commit's hot spot).

    SQLAlchemy's generic executemany spends ~100 µs per row on parameter processing; here each
    column's own bind processor (UTC handling included) runs once per value and the driver gets
    plain tuples (SQLite) or one array per column (PostgreSQL, ``unnest``).
    """
    if not messages:
        return
    dialect = conn.dialect
    processors = _bind_processors(dialect)
    columns = [[process(getattr(m, name)) if process else getattr(m, name) for m in messages]
               for name, process in zip(_FIELDS, processors, strict=True)]
    names = ", ".join(_FIELDS)
    if dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(:{name} AS {_PG_ARRAY[name]})" for name in _FIELDS)
        await conn.execute(
            text(f"INSERT INTO chat_messages ({names}) SELECT * FROM unnest({arrays})"),
            dict(zip(_FIELDS, columns, strict=True)),
        )
    else:
        marks = ", ".join("?" for _ in _FIELDS)
        await conn.exec_driver_sql(
            f"INSERT INTO chat_messages ({names}) VALUES ({marks})", list(zip(*columns))
        )


_PG_ARRAY = {
    "id": "text[]", "stream_id": "text[]", "seq": "bigint[]", "sender_id": "text[]",
    "client_msg_id": "text[]", "body": "text[]", "client_sent_at": "timestamptz[]",
    "created_at": "timestamptz[]", "edited_at": "timestamptz[]", "edited_by": "text[]",
    "deleted_at": "timestamptz[]", "deleted_by": "text[]", "sent_body_sha256": "text[]",
}
_PROCESSORS: dict[str, list[Any]] = {}


def _bind_processors(dialect: Any) -> list[Any]:
    cached = _PROCESSORS.get(dialect.name)
    if cached is None:
        cached = [chat_messages.c[name].type.bind_processor(dialect) for name in _FIELDS]
        _PROCESSORS[dialect.name] = cached
    return cached


async def get_message(
    conn: AsyncConnection, stream_id: str, message_id: str, *, lock: bool = False
) -> Message | None:
    query = select(*_COLUMNS).where(
        chat_messages.c.id == message_id, chat_messages.c.stream_id == stream_id
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _to_message(row) if row is not None else None


async def update_message(conn: AsyncConnection, message: Message) -> None:
    await conn.execute(
        update(chat_messages)
        .where(chat_messages.c.id == message.id)
        .values(
            body=message.body,
            edited_at=message.edited_at,
            edited_by=message.edited_by,
            deleted_at=message.deleted_at,
            deleted_by=message.deleted_by,
        )
    )


def history_query(stream_id: str, before_seq: int | None, limit: int) -> Select[Any]:
    """Newest first, strictly below ``before_seq`` (from the newest when None).

    Served by the unique index (stream_id, seq), read backwards: no sort, ``limit`` rows read.
    """
    query = (
        select(*_COLUMNS)
        .where(chat_messages.c.stream_id == stream_id)
        .order_by(chat_messages.c.seq.desc())
        .limit(limit)
    )
    if before_seq is not None:
        query = query.where(chat_messages.c.seq < before_seq)
    return query


def resync_query(stream_id: str, after_seq: int, limit: int) -> Select[Any]:
    """Oldest first, strictly above ``after_seq``; same index, read forwards."""
    return (
        select(*_COLUMNS)
        .where(chat_messages.c.stream_id == stream_id, chat_messages.c.seq > after_seq)
        .order_by(chat_messages.c.seq.asc())
        .limit(limit)
    )


async def page_before(
    conn: AsyncConnection, stream_id: str, before_seq: int | None, limit: int
) -> list[Message]:
    result = await conn.execute(history_query(stream_id, before_seq, limit))
    return [Message(*row) for row in result]


async def page_after(
    conn: AsyncConnection, stream_id: str, after_seq: int, limit: int
) -> list[Message]:
    result = await conn.execute(resync_query(stream_id, after_seq, limit))
    return [Message(*row) for row in result]


@dataclass(frozen=True)
class SanctionRow:
    id: str
    stream_id: str
    user_id: str
    kind: str
    until: datetime | None
    reason: str | None
    created_by: str
    created_at: datetime
    lifted_at: datetime | None


async def insert_sanction(conn: AsyncConnection, sanction: SanctionRow) -> None:
    await conn.execute(insert(chat_sanctions).values(**asdict(sanction)))


async def list_active_sanctions(
    conn: AsyncConnection, stream_id: str, now: datetime
) -> list[SanctionRow]:
    query = (
        select(chat_sanctions)
        .where(
            chat_sanctions.c.stream_id == stream_id,
            chat_sanctions.c.lifted_at.is_(None),
            or_(chat_sanctions.c.until.is_(None), chat_sanctions.c.until > now),
        )
        .order_by(chat_sanctions.c.created_at, chat_sanctions.c.id)
    )
    return [SanctionRow(**row._mapping) for row in await conn.execute(query)]


async def lift_sanctions(
    conn: AsyncConnection, stream_id: str, user_id: str, kind: str | None, now: datetime
) -> int:
    conditions = [
        chat_sanctions.c.stream_id == stream_id,
        chat_sanctions.c.user_id == user_id,
        chat_sanctions.c.lifted_at.is_(None),
        or_(chat_sanctions.c.until.is_(None), chat_sanctions.c.until > now),
    ]
    if kind is not None:
        conditions.append(chat_sanctions.c.kind == kind)
    result = await conn.execute(update(chat_sanctions).where(and_(*conditions)).values(lifted_at=now))
    return result.rowcount


async def set_slow_mode(conn: AsyncConnection, stream_id: str, seconds: int) -> None:
    await conn.execute(
        update(stream_sessions)
        .where(stream_sessions.c.id == stream_id)
        .values(slow_mode_seconds=seconds)
    )
