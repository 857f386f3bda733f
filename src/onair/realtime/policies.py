"""Who may do what on which realtime topic (issue 5 §6).

The hook is ``allowed(principal, topic, extension, action, event=None) -> bool`` where ``topic`` is
the sub-topic (``stream:{id}``), ``extension`` one of ``broadcast``, ``presence`` or
``postgres_changes:<table>``, and ``action`` ``read`` or ``write``. It is synchronous so the hub
can ask it on every push; whatever it needs from the database is loaded beforehand by ``prepare``
(at join and at token refresh) and kept fresh from the stream's events.

Rules for ``stream:{id}``: staff may do everything; a user banned from the stream gets nothing;
the stream must exist; everyone else may read (anonymous viewers only on public channels);
signed-in users may track presence and send ordinary broadcasts; server events (``stream_state``,
``viewer_count``, ``token_renew``) come only from the service role, and seller events (names
starting with ``seller:`` or ``webrtc:``) only from the stream's seller and co-hosts.
``stream_viewers`` changes are readable by the seller, co-hosts and staff only.
Other topics: public channels are open to any valid token; private ones are denied by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

STAFF_ROLES = frozenset({"moderator", "admin", "service"})
SERVER_EVENTS = frozenset({"stream_state", "viewer_count", "token_renew"})
SELLER_EVENT_PREFIXES = ("seller:", "webrtc:")
STREAM_PREFIX = "stream:"


def role_of(principal: Any) -> str:
    role = getattr(principal, "role", "anon")
    return str(getattr(role, "value", role))


def is_staff(principal: Any) -> bool:
    return role_of(principal) in STAFF_ROLES


class Authorizer(Protocol):
    async def prepare(self, principal: Any, topic: str) -> None: ...

    def allowed(self, principal: Any, topic: str, extension: str, action: str, *,
                private: bool = False, event: str | None = None) -> bool: ...


@dataclass(slots=True)
class StreamFacts:
    seller_id: str | None
    cohosts: set[str] = field(default_factory=set)
    banned: set[str] = field(default_factory=set)


FactsLoader = Callable[[str], Awaitable[StreamFacts | None]]


def stream_id_of(topic: str) -> str | None:
    if topic.startswith(STREAM_PREFIX):
        return topic[len(STREAM_PREFIX):] or None
    return None


class StreamPolicy:
    """The rules above; ``facts`` is a cache the realtime layer keeps fresh from events."""

    def __init__(self, load: FactsLoader | None = None) -> None:
        self._load = load
        self.facts: dict[str, StreamFacts | None] = {}

    async def prepare(self, principal: Any, topic: str) -> None:
        stream_id = stream_id_of(topic)
        if stream_id is not None and self._load is not None:
            self.facts[stream_id] = await self._load(stream_id)

    def allowed(self, principal: Any, topic: str, extension: str, action: str, *,
                private: bool = False, event: str | None = None) -> bool:
        stream_id = stream_id_of(topic)
        if stream_id is None:
            return not private or is_staff(principal)
        if is_staff(principal):
            return True
        facts = self.facts.get(stream_id)
        if facts is None:
            return False
        user = getattr(principal, "user_id", None)
        if user is not None and user in facts.banned:
            return False
        signed_in = user is not None and role_of(principal) != "anon"
        owner = signed_in and (user == facts.seller_id or user in facts.cohosts)
        if action == "read":
            if extension == "postgres_changes:stream_viewers":
                return owner
            return signed_in or not private
        if extension == "broadcast" and event is not None:
            if event in SERVER_EVENTS:
                return False
            if event.startswith(SELLER_EVENT_PREFIXES):
                return owner
        return signed_in

    def ban(self, stream_id: str, user_id: str) -> None:
        facts = self.facts.get(stream_id)
        if facts is not None:
            facts.banned.add(user_id)
        if self._load is not None and hasattr(self._load, "invalidate"):
            self._load.invalidate(stream_id)  # a rejoin must not see a cached list without the ban

    def unban(self, stream_id: str, user_id: str) -> None:
        self.facts.pop(stream_id, None)  # reloaded (bans can overlap) at the next prepare
        if self._load is not None and hasattr(self._load, "invalidate"):
            self._load.invalidate(stream_id)

    def forget(self, stream_id: str) -> None:
        self.facts.pop(stream_id, None)


class AllowAll:
    """For tests and the standalone benchmark server: every valid token may do everything."""

    async def prepare(self, principal: Any, topic: str) -> None:
        return None

    def allowed(self, principal: Any, topic: str, extension: str, action: str, *,
                private: bool = False, event: str | None = None) -> bool:
        return True
