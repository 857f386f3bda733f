"""The server side of one channel, per (connection, topic): a transition table.

Rules (spec §3):
* A topic starts CLOSED. ``phx_join`` moves it to JOINING while the hub decides (authorization
  may need I/O); the decision moves it to JOINED (reply ``ok``) or back to CLOSED (reply error).
* Pushes (broadcast, presence, access_token) are legal only in JOINED.
* ``phx_leave`` and a server shutdown (``system`` error + ``phx_close``) end in CLOSED.
* A second ``phx_join`` of a JOINED topic replaces the join (the old one is left first).
* A failure inside the hub moves the channel to ERRORED (``phx_error``); the client rejoins.

An illegal move raises :class:`LocalProtocolError` naming the event, the topic and the state; the
connection turns it into an ``unmatched topic`` reply at its receive boundary.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from onair.realtime.protocol.errors import LocalProtocolError
from onair.realtime.protocol.join import JoinConfig


class State(enum.Enum):
    CLOSED = "closed"
    JOINING = "joining"
    JOINED = "joined"
    ERRORED = "errored"


class Event(enum.Enum):
    JOIN = "join"
    JOIN_OK = "join_ok"
    JOIN_ERROR = "join_error"
    PUSH = "push"
    LEAVE = "leave"
    SHUTDOWN = "shutdown"
    CRASH = "crash"


CLOSED, JOINING, JOINED, ERRORED = State.CLOSED, State.JOINING, State.JOINED, State.ERRORED

TRANSITIONS: dict[State, dict[Event, State]] = {
    CLOSED: {Event.JOIN: JOINING},
    ERRORED: {Event.JOIN: JOINING},
    JOINING: {Event.JOIN_OK: JOINED, Event.JOIN_ERROR: CLOSED, Event.CRASH: ERRORED},
    JOINED: {
        Event.PUSH: JOINED,
        Event.JOIN: JOINING,
        Event.LEAVE: CLOSED,
        Event.SHUTDOWN: CLOSED,
        Event.CRASH: ERRORED,
    },
}


@dataclass(slots=True)
class Channel:
    topic: str
    join_ref: str | None = None
    state: State = CLOSED
    config: JoinConfig = field(default_factory=JoinConfig)
    size: int = 0  # bytes of the join frame this channel keeps (topic, config, token)


class ChannelTable:
    """All channels of one connection, keyed by topic. Closed channels are forgotten."""

    __slots__ = ("_channels",)

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def get(self, topic: str) -> Channel | None:
        return self._channels.get(topic)

    def state(self, topic: str) -> State:
        channel = self._channels.get(topic)
        return channel.state if channel else CLOSED

    def handle(self, topic: str, event: Event) -> Channel:
        """Apply ``event``; returns the channel (still holding its join_ref after a close)."""
        channel = self._channels.get(topic) or Channel(topic)
        target = TRANSITIONS[channel.state].get(event)
        if target is None:
            raise LocalProtocolError(
                f"cannot {event.value} on topic {topic!r} in state {channel.state.value}"
            )
        channel.state = target
        if target is CLOSED:
            self._channels.pop(topic, None)
        else:
            self._channels[topic] = channel
        return channel

    def joined(self) -> list[Channel]:
        return [c for c in self._channels.values() if c.state is JOINED]

    def __len__(self) -> int:
        return len(self._channels)  # errored channels too: every entry holds a client's topic

    def join_bytes(self) -> int:
        return sum(c.size for c in self._channels.values())

    def topics(self) -> list[str]:
        return list(self._channels)
