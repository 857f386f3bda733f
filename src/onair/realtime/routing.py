"""Which broker topics a channel join needs, and which stream a change binding is scoped to.

Services publish every committed event of stream X on broker topic ``stream:{X}`` (one topic per
stream keeps per-stream order). A node subscribes to it while any local channel needs it: a member
of ``realtime:stream:{X}`` (server broadcasts) or a postgres_changes binding filtered on stream X.
Channel broadcasts and presence between nodes travel on ``realtime:{sub-topic}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from onair.realtime.policies import stream_id_of
from onair.realtime.protocol.join import Binding, JoinConfig
from onair.realtime.protocol.messages import sub_topic
from onair.realtime.visibility import TABLES
from onair.topics import stream_topic

# table -> the column that names the stream a row belongs to
STREAM_COLUMN = {table: rule.stream_column for table, rule in TABLES.items()}


def binding_stream(binding: Binding) -> str | None:
    """The stream a binding on one of our tables is scoped to (its ``<col>=eq.<id>`` filter)."""
    column = STREAM_COLUMN.get(binding.table)
    if column is None:
        return None
    for c in binding.filter.conditions:
        if c.column == column and c.op == "eq" and not c.negate and isinstance(c.value, str):
            return c.value
    return None


def scope_error(binding: Binding) -> str | None:
    """Every table is per stream: a binding names one stream (``<col>=eq.<id>``), so nobody gets
    the rows of every stream, and a table nobody may read is refused (default deny)."""
    column = STREAM_COLUMN.get(binding.table)
    if binding.table != "*" and column is None:
        return f"Unauthorized: postgres_changes on {binding.table} are not available"
    if binding.table == "*" or binding_stream(binding) is None:
        table = binding.table if binding.table != "*" else "chat_messages"
        col = column or "stream_id"
        return f"postgres_changes on {table} need a filter {col}=eq.<stream id>"
    return None


def relay_topic(topic: str) -> str:
    return topic  # a channel's wire name doubles as its broker topic for cross-node relay


def broker_topics(distributed: bool) -> Callable[[str, JoinConfig], Iterable[str]]:
    """The hub's ``broker_topics`` hook: stream events always, channel relay between nodes."""

    def topics(topic: str, config: JoinConfig) -> Iterable[str]:
        sub = sub_topic(topic) or ""
        stream = stream_id_of(sub)
        if stream is not None:
            yield stream_topic(stream)
        for b in config.bindings:
            if b.error is None and (sid := binding_stream(b)) is not None:
                yield stream_topic(sid)
        if distributed:
            yield relay_topic(topic)
    return topics


def stream_interests(topic: str, config: JoinConfig) -> Iterator[str]:
    """The hub's ``interests`` hook: the streams a join reads (its own stream channel, and the
    stream of each postgres_changes binding, refused ones included: re-authorization may switch
    a refused binding on). A change of stream X re-checks exactly these members."""
    stream = stream_id_of(sub_topic(topic) or "")
    if stream is not None:
        yield stream
    for b in config.bindings:
        if (sid := binding_stream(b)) is not None:
            yield sid
