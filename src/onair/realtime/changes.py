"""postgres_changes: which bindings a committed row change reaches, and the message it becomes.

Matching is indexed (issue 5 §5): bindings are kept per table, and those with a ``col=eq.value``
condition sit in a hash index on (column, value). A change for stream X therefore touches only the
bindings filtered on X (plus the few unindexable ones), never every subscription.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from onair.realtime import visibility
from onair.realtime.protocol.join import Binding
from onair.topics import RowEvent

if TYPE_CHECKING:
    from onair.realtime.client import Client

# Postgres type names the clients use to convert values (realtime-js convertChangeData).
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "chat_messages": {
        "id": "text", "stream_id": "text", "seq": "int8", "sender_id": "text", "client_msg_id": "text",
        "body": "text", "client_sent_at": "timestamptz", "created_at": "timestamptz", "edited_at": "timestamptz",
        "edited_by": "text", "deleted_at": "timestamptz", "deleted_by": "text",
    },
    "stream_sessions": {
        "id": "text", "seller_id": "text", "title": "text", "status": "text", "version": "int8",
        "created_at": "timestamptz", "started_at": "timestamptz", "paused_at": "timestamptz", "ended_at": "timestamptz",
        "end_reason": "text", "pause_reason": "text", "last_host_heartbeat_at": "timestamptz",
        "viewer_count": "int4", "peak_viewers": "int4", "slow_mode_seconds": "int4",
    },
    "stream_viewers": {
        "stream_id": "text", "user_id": "text", "joined_at": "timestamptz", "last_heartbeat_at": "timestamptz",
        "left_at": "timestamptz",
    },
    "stream_cohosts": {"stream_id": "text", "user_id": "text", "invited_by": "text", "created_at": "timestamptz"},
    "chat_sanctions": {
        "id": "text", "stream_id": "text", "user_id": "text", "kind": "text", "until": "timestamptz",
        "reason": "text", "created_by": "text", "created_at": "timestamptz", "lifted_at": "timestamptz",
    },
}


class Sub:
    """One binding of one channel join."""

    __slots__ = ("binding", "client", "topic")

    def __init__(self, client: Client, topic: str, binding: Binding) -> None:
        self.client = client
        self.topic = topic
        self.binding = binding


def _key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    return None


class Group:
    """Everyone on one channel topic holding one binding (equal bindings share an id): a change
    is matched once per group, not once per subscriber."""

    __slots__ = ("binding", "clients", "topic")

    def __init__(self, topic: str, binding: Binding) -> None:
        self.topic = topic
        self.binding = binding
        self.clients: dict[Client, None] = {}


Groups = dict[tuple[str, int], Group]


class _TableSubs:
    __slots__ = ("eq", "scan")

    def __init__(self) -> None:
        self.eq: dict[str, dict[str, Groups]] = {}
        self.scan: Groups = {}

    def __bool__(self) -> bool:
        return bool(self.eq or self.scan)


class ChangeIndex:
    def __init__(self) -> None:
        self._tables: dict[str, _TableSubs] = {}
        self._size = 0

    def _groups(self, table: _TableSubs, binding: Binding, create: bool) -> Groups | None:
        key = binding.filter.eq_key()
        if key is None:
            return table.scan
        column = table.eq.setdefault(key[0], {}) if create else table.eq.get(key[0])
        if column is None:
            return None
        return column.setdefault(key[1], {}) if create else column.get(key[1])

    def add(self, sub: Sub) -> None:
        table = self._tables.setdefault(sub.binding.table, _TableSubs())
        groups = self._groups(table, sub.binding, create=True)
        assert groups is not None
        gkey = (sub.topic, sub.binding.id)
        group = groups.get(gkey)
        if group is None:
            group = groups[gkey] = Group(sub.topic, sub.binding)
        if sub.client not in group.clients:
            group.clients[sub.client] = None
            self._size += 1

    def remove(self, sub: Sub) -> None:
        table = self._tables.get(sub.binding.table)
        if table is None:
            return
        groups = self._groups(table, sub.binding, create=False)
        gkey = (sub.topic, sub.binding.id)
        group = groups.get(gkey) if groups is not None else None
        if group is None or sub.client not in group.clients:
            return
        del group.clients[sub.client]
        self._size -= 1
        if not group.clients:
            assert groups is not None
            del groups[gkey]
            key = sub.binding.filter.eq_key()
            if key is not None and not groups:
                column = table.eq[key[0]]
                del column[key[1]]
                if not column:
                    del table.eq[key[0]]
        if not table:
            del self._tables[sub.binding.table]

    def match(self, schema: str, table: str, change_type: str, record: dict[str, Any] | None) -> list[Group]:
        """Every group whose binding the change satisfies; work is per group, not per client."""
        out: list[Group] = []
        for name in (table, "*"):
            subs = self._tables.get(name)
            if subs is None:
                continue
            candidates: list[Groups] = [subs.scan]
            if record:
                for column, buckets in subs.eq.items():
                    key = _key(record.get(column))
                    if key is not None and key in buckets:
                        candidates.append(buckets[key])
            verdicts: dict[int, bool] = {}  # equal bindings (same id) match alike: decide once
            for groups in candidates:
                for group in groups.values():
                    b = group.binding
                    ok = verdicts.get(b.id)
                    if ok is None:
                        ok = verdicts[b.id] = (b.error is None and b.wants(change_type)
                                               and b.schema in (schema, "*") and b.filter.matches(record))
                    if ok:
                        out.append(group)
        return out

    def __len__(self) -> int:
        return self._size


def _pg_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int8"
    if isinstance(value, float):
        return "float8"
    if isinstance(value, (dict, list)):
        return "jsonb"
    return "text"


def commit_timestamp(value: Any) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (spec §6.2) from whatever ISO form the event carries."""
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        dt = dt.astimezone(UTC)
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return "1970-01-01T00:00:00.000Z"


@dataclass(frozen=True, slots=True)
class RowChange:
    schema: str
    table: str
    type: str
    record: dict[str, Any] | None
    old_record: dict[str, Any] | None
    commit_timestamp: str

    @classmethod
    def from_row(cls, row: RowEvent) -> RowChange | None:
        """The change as its readers may see it (``realtime/visibility.py``): hidden columns are
        gone before matching, so no filter can probe them either; None for a table nobody reads."""
        table, kind = row.table, row.type
        if kind not in ("INSERT", "UPDATE", "DELETE") or table not in visibility.TABLES:
            return None
        record = visibility.project(table, row.record)
        old = visibility.old_identity(table, row.old_record)
        return cls("public", table, kind, record, old, commit_timestamp(row.commit_timestamp))

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> RowChange | None:
        """:meth:`from_row` of a ``row`` envelope's JSON object."""
        row = RowEvent.from_json(event)
        return cls.from_row(row) if row is not None else None

    @property
    def matched_record(self) -> dict[str, Any] | None:
        """Filters apply to the new row, or to the old one for deletes."""
        return self.old_record if self.type == "DELETE" else self.record

    def data(self) -> dict[str, Any]:
        row = self.record or self.old_record or {}
        types = COLUMN_TYPES.get(self.table, {})
        columns = [{"name": k, "type": types.get(k) or _pg_type(v)} for k, v in row.items()]
        out: dict[str, Any] = {
            "schema": self.schema, "table": self.table, "commit_timestamp": self.commit_timestamp,
            "type": self.type, "columns": columns,
        }
        if self.type != "DELETE":
            out["record"] = self.record or {}
        if self.type != "INSERT":
            out["old_record"] = self.old_record or {}
        out["errors"] = None
        return out
