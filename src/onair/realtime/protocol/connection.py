"""One client connection, sans I/O: frame bodies in, requests and frames out.

Shaped like websockets' ``Protocol``: the shell feeds each received frame body to
:meth:`ConnectionProtocol.receive` together with the current time and gets back the requests the
hub must decide (join, leave, broadcast, presence, token refresh). Everything the protocol can
answer alone (heartbeats, ``unmatched topic``, malformed pushes) is answered here. Outgoing frames
are collected, already WebSocket-framed, and taken with :meth:`data_to_send`.

Time only comes in as ``now`` (seconds, any monotonic origin): :meth:`idle_for` reports how long the
peer has been silent, and the shell decides when that is too long (spec §1.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from onair.realtime.protocol import messages as m
from onair.realtime.protocol.channel import Channel, ChannelTable, Event, State
from onair.realtime.protocol.errors import LocalProtocolError, ProtocolError
from onair.realtime.protocol.filters import DEFAULT_LIMITS, FilterLimits
from onair.realtime.protocol.join import JoinConfig, parse_join
from onair.realtime.protocol.messages import BroadcastPush, Message
from onair.realtime.protocol.serializer import Serializer
from onair.realtime.protocol.wsframe import frame

UNMATCHED = {"reason": "unmatched topic"}


@dataclass(frozen=True, slots=True)
class JoinRequested:
    topic: str
    join_ref: str | None
    ref: str | None
    config: JoinConfig
    replaces: bool  # a duplicate join: the hub must drop the old membership first


@dataclass(frozen=True, slots=True)
class LeaveRequested:
    topic: str
    join_ref: str | None


@dataclass(frozen=True, slots=True)
class BroadcastRequested:
    """``payload`` is the user payload (an ``orjson.Fragment`` of its JSON for binary pushes, so
    it is spliced, not re-encoded), or None with ``raw`` holding raw bytes (binary encoding 0)."""

    topic: str
    ref: str | None
    event: str
    payload: Any
    raw: bytes | None
    size: int


@dataclass(frozen=True, slots=True)
class PresenceRequested:
    topic: str
    ref: str | None
    track: bool
    meta: dict[str, Any]
    size: int


@dataclass(frozen=True, slots=True)
class TokenRefreshed:
    topic: str
    token: str


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    reason: str


Request = (
    JoinRequested
    | LeaveRequested
    | BroadcastRequested
    | PresenceRequested
    | TokenRefreshed
    | ProtocolViolation
)


class ConnectionProtocol:
    __slots__ = (
        "_out",
        "channels",
        "filter_limits",
        "last_seen",
        "max_join_bytes",
        "max_topic_bytes",
        "serializer",
    )

    def __init__(self, serializer: Serializer, now: float, filter_limits: FilterLimits = DEFAULT_LIMITS,
                 max_topic_bytes: int = 255, max_join_bytes: int = 262_144) -> None:
        self.serializer = serializer
        self.filter_limits = filter_limits
        # what a connection's channels keep (topics, configs, tokens) is bounded by these
        self.max_topic_bytes = max_topic_bytes
        self.max_join_bytes = max_join_bytes  # all open joins' frames together
        self.channels = ChannelTable()
        self.last_seen = now
        self._out: list[bytes] = []

    # -- input ----------------------------------------------------------------------------------

    def receive(self, data: bytes, binary: bool, now: float) -> Request | None:
        """Handle one frame body; returns at most one request for the hub."""
        self.last_seen = now
        try:
            msg = self.serializer.decode(data, binary)
        except ProtocolError as exc:
            return ProtocolViolation(str(exc))
        if isinstance(msg, BroadcastPush):
            return self._binary_broadcast(msg, len(data))
        try:
            return self._dispatch(msg, len(data))
        except LocalProtocolError:
            self.send(m.reply(msg.join_ref, msg.ref, msg.topic, "error", UNMATCHED))
            return None

    def _dispatch(self, msg: Message, size: int) -> Request | None:
        event = msg.event
        if msg.topic == m.PHOENIX_TOPIC:
            if event == m.HEARTBEAT:
                self.send(m.reply(None, msg.ref, m.PHOENIX_TOPIC, "ok", {}))
                return None
            raise LocalProtocolError(f"unknown event {event!r} on topic 'phoenix'")
        if event == m.PHX_JOIN:
            return self._join(msg, size)
        if event == m.PHX_LEAVE:
            channel = self.channels.get(msg.topic)
            if channel is None or channel.state is not State.JOINED:
                self.send(m.reply(msg.join_ref, msg.ref, msg.topic, "ok", {}))
                return None
            self.channels.handle(msg.topic, Event.LEAVE)
            self.send(m.reply(channel.join_ref, msg.ref, msg.topic, "ok", {}))
            self.send(m.close(channel.join_ref, msg.topic))
            return LeaveRequested(msg.topic, channel.join_ref)
        channel = self._joined(msg.topic, msg.join_ref)
        payload = msg.payload
        if event == m.BROADCAST:
            if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
                self.send(m.reply(channel.join_ref, msg.ref, msg.topic, "error", {"reason": "malformed broadcast"}))
                return None
            body = payload.get("payload", {})
            return BroadcastRequested(msg.topic, msg.ref, payload["event"], body, None, size)
        if event == m.PRESENCE:
            return self._presence(channel, msg, size)
        if event == m.ACCESS_TOKEN:
            token = payload.get("access_token") if isinstance(payload, dict) else None
            if isinstance(token, str) and token and not token.startswith("sb_"):
                return TokenRefreshed(msg.topic, token)
            return None
        self.send(m.reply(channel.join_ref, msg.ref, msg.topic, "error", {"reason": f"unknown event {event}"}))
        return None

    def _joined(self, topic: str, join_ref: str | None) -> Channel:
        channel = self.channels.get(topic)
        if channel is None or channel.state is not State.JOINED:
            raise LocalProtocolError(f"cannot push on topic {topic!r} in state {self.channels.state(topic).value}")
        if join_ref is not None and join_ref != channel.join_ref:
            raise LocalProtocolError(f"stale join_ref {join_ref!r} on topic {topic!r}")
        return channel

    def _join(self, msg: Message, size: int) -> Request | None:
        sub = m.sub_topic(msg.topic)
        if sub is None:
            self.send(m.reply(msg.join_ref, msg.ref, msg.topic, "error", UNMATCHED))
            return None
        if not sub:
            reason = "TopicNameRequired: You must provide a topic name"
            self.send(m.reply(msg.join_ref, msg.ref, msg.topic, "error", {"reason": reason}))
            return None
        if len(msg.topic) > self.max_topic_bytes or len(msg.topic.encode()) > self.max_topic_bytes:
            reason = f"TopicNameTooLong: Topic name must be at most {self.max_topic_bytes} bytes"
            self.send(m.reply(msg.join_ref, msg.ref, msg.topic, "error", {"reason": reason}))
            return None
        current = self.channels.get(msg.topic)
        if self.channels.join_bytes() - (current.size if current else 0) + size > self.max_join_bytes:
            reason = f"JoinPayloadTooLarge: This connection's joins may take at most {self.max_join_bytes} bytes"
            self.send(m.reply(msg.join_ref, msg.ref, msg.topic, "error", {"reason": reason}))
            return None
        replaces = self.channels.state(msg.topic) is State.JOINED
        channel = self.channels.handle(msg.topic, Event.JOIN)
        channel.size = size
        channel.join_ref = msg.join_ref if msg.join_ref is not None else msg.ref
        channel.config = parse_join(msg.payload, self.filter_limits)
        return JoinRequested(msg.topic, channel.join_ref, msg.ref, channel.config, replaces)

    def _presence(self, channel: Channel, msg: Message, size: int) -> Request | None:
        payload = msg.payload if isinstance(msg.payload, dict) else {}
        action = payload.get("event")
        action = action.lower() if isinstance(action, str) else ""
        if action == "track":
            meta = payload.get("payload", {})
            if not isinstance(meta, dict):
                reason = {"reason": "Presence track payload must be a map"}
                self.send(m.reply(channel.join_ref, msg.ref, msg.topic, "error", reason))
                return None
            return PresenceRequested(msg.topic, msg.ref, True, meta, size)
        if action == "untrack":
            return PresenceRequested(msg.topic, msg.ref, False, {}, size)
        self.send(m.reply(channel.join_ref, msg.ref, msg.topic, "error", {}))
        return None

    def _binary_broadcast(self, push: BroadcastPush, size: int) -> Request | None:
        try:
            self._joined(push.topic, push.join_ref)
        except LocalProtocolError:
            self.send(m.reply(push.join_ref, push.ref, push.topic, "error", UNMATCHED))
            return None
        if push.is_json:
            return BroadcastRequested(push.topic, push.ref, push.event, orjson.Fragment(push.payload), None, size)
        return BroadcastRequested(push.topic, push.ref, push.event, None, push.payload, size)

    # -- decisions from the hub ---------------------------------------------------------------

    def join_ok(self, topic: str, ref: str | None, response: dict[str, Any]) -> None:
        channel = self.channels.handle(topic, Event.JOIN_OK)
        self.send(m.reply(channel.join_ref, ref, topic, "ok", response))

    def join_error(self, topic: str, ref: str | None, reason: str) -> None:
        channel = self.channels.handle(topic, Event.JOIN_ERROR)
        self.send(m.reply(channel.join_ref, ref, topic, "error", {"reason": reason}))

    def shutdown(self, topic: str, message: str, extension: str = "system",
                 status: str = "error") -> str | None:
        """Close a joined channel: ``system`` error then ``phx_close`` (spec §7.3); with status
        ``ok`` a normal, final end (the stream ended) that clients should not rejoin."""
        channel = self.channels.get(topic)
        if channel is None or channel.state is not State.JOINED:
            return None
        self.channels.handle(topic, Event.SHUTDOWN)
        self.send(m.system(channel.join_ref, topic, extension, status, message))
        self.send(m.close(channel.join_ref, topic))
        return channel.join_ref

    def crash(self, topic: str) -> None:
        """An unexpected failure while handling a push: ``phx_error``; the client rejoins."""
        channel = self.channels.get(topic)
        if channel is None or channel.state not in (State.JOINING, State.JOINED):
            return
        self.channels.handle(topic, Event.CRASH)
        self.send(Message(channel.join_ref, channel.join_ref, topic, m.PHX_ERROR, {}))

    def join_ref(self, topic: str) -> str | None:
        channel = self.channels.get(topic)
        return channel.join_ref if channel else None

    # -- output -------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        self._out.append(frame(self.serializer.encode(msg)))

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def idle_for(self, now: float) -> float:
        return now - self.last_seen
