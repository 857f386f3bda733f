"""Topic names and broker envelopes: the one home for what onair processes say to each other.

Names (every ``stream:`` / ``realtime:`` spelling in the code comes from here):

* ``stream:{id}`` — the broker topic of stream ``id``'s committed events (``services/events.py``
  publishes, every process with a local reader subscribes); the same text is the *sub-topic* of
  the stream's realtime channel, which clients join as ``realtime:stream:{id}``.
* ``realtime:{sub}`` — a channel's wire name (Phoenix topic). It doubles as the broker topic on
  which channel broadcasts and shared presence diffs travel between processes.
* ``onair:cache`` — stream cache drops (``services/stream_cache.py``).

Envelopes are frozen dataclasses with one :func:`encode` (publishers) and one :func:`decode`
(subscribers). The bytes are exactly those of the dict literals the publishers wrote before this
module existed (golden table: ``tests/unit/test_topics.py``), so processes of both versions
interoperate. Which envelope a message is depends on its topic and its ``kind``: a ``broadcast`` on
a stream topic is a server broadcast from a service, on a channel topic a relay between processes.
:func:`decode` looks the kind up in a table per topic family; a kind it does not know, or fields of
the wrong type, decode to None (a newer publisher's kind is skipped, as before), bytes that are not
JSON raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from onair.realtime.protocol import messages as _wire

if TYPE_CHECKING:
    from datetime import datetime

STREAM_PREFIX = "stream:"
# Supabase Realtime's channel prefix belongs to the wire protocol, whose sans-I/O core imports
# nothing from outside it (tests/realtime/test_protocol_imports.py): it is spelled there, once.
CHANNEL_PREFIX = _wire.TOPIC_PREFIX
CACHE_TOPIC = "onair:cache"
# Templates the browser pages fill in with a stream id (``api/pages.py`` hands them out).
STREAM_TOPIC_TEMPLATE = STREAM_PREFIX + "{id}"
SIGNAL_TOPIC_TEMPLATE = STREAM_TOPIC_TEMPLATE + ":signal"

# Datetimes in row records are written as UTC with a ``Z`` (naive ones taken as UTC).
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


# -- names ---------------------------------------------------------------------------------------


def stream_topic(stream_id: str) -> str:
    """``"s1"`` → ``"stream:s1"``: the stream's broker topic and its channel's sub-topic."""
    return STREAM_PREFIX + stream_id


def parse_stream_topic(name: str) -> str | None:
    """``"stream:s1"`` → ``"s1"``; ``"stream:"`` → ``""``; None for names outside ``stream:*``."""
    return name[len(STREAM_PREFIX):] if name.startswith(STREAM_PREFIX) else None


def is_stream_topic(name: str) -> bool:
    return name.startswith(STREAM_PREFIX)


def channel_topic(sub: str) -> str:
    """``"room1"`` → ``"realtime:room1"``: a channel's wire name (and its relay broker topic)."""
    return CHANNEL_PREFIX + sub


def parse_channel_topic(name: str) -> str | None:
    """``"realtime:room1"`` → ``"room1"``; None for names outside ``realtime:*``."""
    return name[len(CHANNEL_PREFIX):] if name.startswith(CHANNEL_PREFIX) else None


def is_channel_topic(name: str) -> bool:
    return name.startswith(CHANNEL_PREFIX)


def stream_channel(stream_id: str) -> str:
    """``"s1"`` → ``"realtime:stream:s1"``: the wire name of the stream's channel."""
    return CHANNEL_PREFIX + STREAM_PREFIX + stream_id


def parse_stream_channel(name: str) -> str | None:
    """``"realtime:stream:s1"`` → ``"s1"``; None for any other name."""
    sub = parse_channel_topic(name)
    return parse_stream_topic(sub) if sub is not None else None


# -- envelopes on stream topics (services → every process) -----------------------------------------

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RowEvent:
    """A committed row change, for postgres_changes readers. ``old_record`` holds the row's
    identity only (``realtime/visibility.py``). Publishers pass datetimes; they decode as text."""

    table: str
    type: str  # INSERT | UPDATE | DELETE
    record: Json | None
    old_record: Json | None
    commit_timestamp: datetime | str | None
    kind = "row"

    def to_json(self) -> Json:
        return {"kind": self.kind, "table": self.table, "type": self.type, "record": self.record,
                "old_record": self.old_record, "commit_timestamp": self.commit_timestamp}

    @classmethod
    def from_json(cls, event: Json) -> RowEvent | None:
        table, type_ = event.get("table"), event.get("type")
        record, old, at = event.get("record"), event.get("old_record"), event.get("commit_timestamp")
        if not isinstance(table, str) or not isinstance(type_, str):
            return None
        return cls(table, type_, record if isinstance(record, dict) else None,
                   old if isinstance(old, dict) else None, at if isinstance(at, str) else None)


@dataclass(frozen=True, slots=True)
class StreamState:
    """The stream's new state; consumers drop a ``version`` not newer than one they saw."""

    stream: Json
    previous: str | None
    version: int | None
    kind = "stream_state"

    @property
    def ended(self) -> bool:
        return self.stream.get("status") == "ended"

    def to_json(self) -> Json:
        return {"kind": self.kind, "stream": self.stream, "previous": self.previous,
                "version": self.version}

    def payload(self) -> Json:
        """The ``stream_state`` broadcast clients get: the envelope without its kind."""
        return {"stream": self.stream, "previous": self.previous, "version": self.version}

    @classmethod
    def from_json(cls, event: Json) -> StreamState | None:
        stream, previous, version = event.get("stream"), event.get("previous"), event.get("version")
        if not isinstance(stream, dict) or not (previous is None or isinstance(previous, str)):
            return None
        return cls(stream, previous, version if type(version) is int else None)


@dataclass(frozen=True, slots=True)
class ViewerCount:
    stream_id: str
    viewer_count: int
    peak_viewers: int
    kind = "viewer_count"

    def to_json(self) -> Json:
        return {"kind": self.kind, "stream_id": self.stream_id, "viewer_count": self.viewer_count,
                "peak_viewers": self.peak_viewers}

    def payload(self) -> Json:
        return {"stream_id": self.stream_id, "viewer_count": self.viewer_count,
                "peak_viewers": self.peak_viewers}

    @classmethod
    def from_json(cls, event: Json) -> ViewerCount | None:
        sid, count, peak = event.get("stream_id"), event.get("viewer_count"), event.get("peak_viewers")
        if not isinstance(sid, str) or type(count) is not int or type(peak) is not int:
            return None
        return cls(sid, count, peak)


@dataclass(frozen=True, slots=True)
class StreamBroadcast:
    """A server broadcast for the stream's channel (``token_renew``, ``chat_sanction``, …)."""

    stream_id: str
    event: str
    payload: Any
    kind = "broadcast"

    def to_json(self) -> Json:
        return {"kind": self.kind, "stream_id": self.stream_id, "event": self.event,
                "payload": self.payload}

    @classmethod
    def from_json(cls, event: Json) -> StreamBroadcast | None:
        name, sid = event.get("event"), event.get("stream_id")
        if not isinstance(name, str):
            return None
        return cls(sid if isinstance(sid, str) else "", name, event.get("payload", {}))


@dataclass(frozen=True, slots=True)
class ReactionsPartial:
    """One process's closed reactions window (``domain/reactions.py`` checks the counts)."""

    node: str
    seq: int
    counts: Mapping[str, Any]
    kind = "reactions_partial"

    def to_json(self) -> Json:
        return {"kind": self.kind, "node": self.node, "seq": self.seq, "counts": dict(self.counts)}

    @classmethod
    def from_json(cls, event: Json) -> ReactionsPartial | None:
        node, seq, counts = event.get("node"), event.get("seq"), event.get("counts")
        if not isinstance(node, str) or type(seq) is not int or not isinstance(counts, dict):
            return None
        return cls(node, seq, counts)


# -- envelopes on channel topics (between realtime processes) --------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelBroadcast:
    """A channel broadcast relayed to the other processes; ``origin`` skips the sender's own."""

    origin: str
    event: str
    payload: Any
    raw: bytes | None = None  # a vsn 2.0.0 binary payload, hex on the broker
    kind = "broadcast"

    def to_json(self) -> Json:
        return {"kind": self.kind, "origin": self.origin, "event": self.event,
                "payload": self.payload, "raw": self.raw.hex() if self.raw is not None else None}

    @classmethod
    def from_json(cls, event: Json) -> ChannelBroadcast | None:
        origin, name, raw = event.get("origin"), event.get("event"), event.get("raw")
        if not isinstance(name, str):
            return None
        return cls(origin if isinstance(origin, str) else "", name, event.get("payload"),
                   bytes.fromhex(raw) if isinstance(raw, str) else None)


@dataclass(frozen=True, slots=True)
class PresenceDiff:
    """Shared presence: joins and leaves of ``node``'s entries, in Supabase's ``presence_diff``
    shape (``broker/presence_base.py``)."""

    node: str
    joins: Json
    leaves: Json
    kind = "presence_diff"

    def to_json(self) -> Json:
        return {"kind": self.kind, "node": self.node, "joins": self.joins, "leaves": self.leaves}

    @classmethod
    def from_json(cls, event: Json) -> PresenceDiff | None:
        node, joins, leaves = event.get("node"), event.get("joins") or {}, event.get("leaves") or {}
        if not isinstance(joins, dict) or not isinstance(leaves, dict):
            return None
        return cls(node if isinstance(node, str) else "", joins, leaves)


# -- the cache topic -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheDrop:
    """Drop ``stream_id``'s cached row and/or access facts (no ``kind``: one shape per topic)."""

    stream_id: str
    row: bool
    access: bool
    origin: str

    def to_json(self) -> Json:
        return {"stream_id": self.stream_id, "row": self.row, "access": self.access,
                "origin": self.origin}

    @classmethod
    def from_json(cls, event: Json) -> CacheDrop | None:
        sid, origin = event.get("stream_id"), event.get("origin")
        if not isinstance(sid, str):
            return None
        return cls(sid, bool(event.get("row", True)), bool(event.get("access", True)),
                   origin if isinstance(origin, str) else "")


StreamEnvelope = RowEvent | StreamState | ViewerCount | StreamBroadcast | ReactionsPartial
ChannelEnvelope = ChannelBroadcast | PresenceDiff
Envelope = StreamEnvelope | ChannelEnvelope | CacheDrop

STREAM_KINDS: dict[str, Callable[[Json], StreamEnvelope | None]] = {
    RowEvent.kind: RowEvent.from_json,
    StreamState.kind: StreamState.from_json,
    ViewerCount.kind: ViewerCount.from_json,
    StreamBroadcast.kind: StreamBroadcast.from_json,
    ReactionsPartial.kind: ReactionsPartial.from_json,
}
CHANNEL_KINDS: dict[str, Callable[[Json], ChannelEnvelope | None]] = {
    ChannelBroadcast.kind: ChannelBroadcast.from_json,
    PresenceDiff.kind: PresenceDiff.from_json,
}


def encode(envelope: Envelope) -> bytes:
    """The broker bytes of ``envelope`` (what :func:`decode` reads back)."""
    return orjson.dumps(envelope.to_json(), option=_OPTIONS)


def decode(topic: str, data: bytes) -> Envelope | None:
    """The envelope ``data`` carries on ``topic``; None for an unknown kind, a malformed envelope
    or a topic no envelope travels on. Raises ``ValueError`` when ``data`` is not JSON."""
    message = orjson.loads(data)
    if not isinstance(message, dict):
        return None
    if topic == CACHE_TOPIC:
        return CacheDrop.from_json(message)
    kind = message.get("kind")
    if not isinstance(kind, str):
        return None
    table: Mapping[str, Callable[[Json], Envelope | None]]
    if is_stream_topic(topic):
        table = STREAM_KINDS
    elif is_channel_topic(topic):
        table = CHANNEL_KINDS
    else:
        return None
    parse = table.get(kind)
    return parse(message) if parse is not None else None
