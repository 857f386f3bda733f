"""The messages of the Phoenix channel protocol as Supabase Realtime uses it.

Two shapes exist on the wire (spec §2): the generic five-field :class:`Message` (text frames in both
serializers) and the binary user broadcast of vsn 2.0.0: :class:`BroadcastPush` (kind 3, client to
server) which the server fans out as a ``broadcast`` message or, for raw bytes, as kind 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PHOENIX_TOPIC = "phoenix"
TOPIC_PREFIX = "realtime:"

# Event names (spec §1.5, §3, §4, §5, §6, §7).
HEARTBEAT = "heartbeat"
PHX_JOIN = "phx_join"
PHX_LEAVE = "phx_leave"
PHX_REPLY = "phx_reply"
PHX_CLOSE = "phx_close"
PHX_ERROR = "phx_error"
BROADCAST = "broadcast"
PRESENCE = "presence"
PRESENCE_STATE = "presence_state"
PRESENCE_DIFF = "presence_diff"
POSTGRES_CHANGES = "postgres_changes"
SYSTEM = "system"
ACCESS_TOKEN = "access_token"


@dataclass(frozen=True, slots=True)
class Message:
    """``[join_ref, ref, topic, event, payload]``; refs are opaque client strings or None."""

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: Any


@dataclass(frozen=True, slots=True)
class BroadcastPush:
    """A user broadcast pushed by a client (vsn 2.0.0 binary kind 3, spec §2.3).

    ``payload`` is the undecoded body: UTF-8 JSON when ``is_json`` (encoding 1), raw bytes
    otherwise (encoding 0). ``metadata`` is the decoded metadata object (``{}`` when absent).
    """

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    metadata: dict[str, Any]
    payload: bytes
    is_json: bool


def sub_topic(topic: str) -> str | None:
    """``"realtime:room1"`` → ``"room1"``; None for topics outside ``realtime:*``."""
    if topic.startswith(TOPIC_PREFIX):
        return topic[len(TOPIC_PREFIX) :]
    return None


def reply(join_ref: str | None, ref: str | None, topic: str, status: str, response: Any) -> Message:
    return Message(join_ref, ref, topic, PHX_REPLY, {"status": status, "response": response})


def system(join_ref: str | None, topic: str, extension: str, status: str, message: str) -> Message:
    channel = sub_topic(topic) or topic
    payload = {"extension": extension, "status": status, "message": message, "channel": channel}
    return Message(join_ref, None, topic, SYSTEM, payload)


def close(join_ref: str | None, topic: str) -> Message:
    """``phx_close`` carries the channel's join_ref as both refs (spec §3.7)."""
    return Message(join_ref, join_ref, topic, PHX_CLOSE, {})


def broadcast_payload(event: str, payload: Any, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "broadcast", "event": event, "payload": payload}
    if meta:
        body["meta"] = meta
    return body
