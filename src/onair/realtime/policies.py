"""Who may do what on which realtime topic (issue 5 §6, issue 10 §5).

The hook is ``allowed(principal, topic, extension, action, event=None) -> bool`` where ``topic`` is
the sub-topic (``stream:{id}``), ``extension`` one of ``broadcast``, ``presence`` or
``postgres_changes:<table>``, and ``action`` ``read`` or ``write``. It is synchronous so the hub
can ask it on every push; whatever it needs from the database is loaded beforehand by ``prepare``
(at join, token refresh and REST broadcast) and kept fresh from the stream's events.

Rules for ``stream:{id}``: staff may do everything; a user banned from the stream gets nothing;
the stream must exist; everyone else may read (anonymous viewers only on public channels);
postgres_changes tables need the rank ``realtime/visibility.py`` names (``stream_viewers``: the
seller, co-hosts and staff). Signed-in users may track presence and send ordinary broadcasts,
except that a muted user sends nothing (a broadcast or a presence meta would carry what the mute
keeps out of chat) and an ended stream takes no client writes at all (its final state and chat
stay readable). Server events (``stream_state``, ``viewer_count``, ``token_renew``,
``chat_sanction``, ``chat_settings``) come only from the service role, and host events (names
starting with ``seller:`` or ``webrtc:``) only from the stream's seller, co-hosts and staff — in
any spelling a client could fold onto them (``protocol/event_names.py``).
Other topics: public channels are open to any valid token; private ones are denied by default.

Facts are cached in two bounded parts (issue 10 §8): streams a local member needs are *pinned*
(the realtime service pins while the hub holds the stream's broker topic and updates them from
the stream's events, so they are never stale and never reloaded); any other stream's facts are
reused for ``ttl`` seconds in an LRU of ``max_streams`` entries, and a stream that does not exist
is remembered for ``missing_ttl`` seconds in an LRU of the same size, so random topics cost one
database read each, not one per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from onair.domain.identity import Principal
from onair.realtime.protocol.event_names import HOST, SERVER, reserved_for
from onair.realtime.visibility import TABLES, rank_allows
from onair.topics import parse_stream_topic

STAFF_ROLES = frozenset({"moderator", "admin", "service"})
PG_PREFIX = "postgres_changes:"

Until = float | None  # epoch seconds; None: until lifted


def role_of(principal: Principal | None) -> str:
    role = getattr(principal, "role", "anon")
    return str(getattr(role, "value", role))


def is_staff(principal: Principal | None) -> bool:
    return role_of(principal) in STAFF_ROLES


class Authorizer(Protocol):
    """What the realtime layer asks an authorizer, and what it tells it about streams.

    Asked: ``prepare`` (load what ``allowed`` needs), ``allowed`` (the rule), ``facts_of`` (what
    it holds about a stream; None when nothing, which makes the realtime service skip
    re-authorization: it never closes a channel on ignorance). Told, from the stream's broker
    events: ``ban``/``unban`` (a ban or mute and its lift), ``cohost``, ``end``; from the stream
    cache: ``invalidate`` (the stream changed, forget short-lived facts). Told of local demand:
    ``pin``/``unpin`` while a local member reads the stream, ``due``/``reload`` to read pinned
    facts again now and then. Every authorizer implements all of them (no-ops where it keeps
    no facts), so callers never ask which kind they hold.
    """

    async def prepare(self, principal: Principal | None, topic: str) -> None: ...

    def allowed(self, principal: Principal | None, topic: str, extension: str, action: str, *,
                private: bool = False, event: str | None = None) -> bool: ...

    def facts_of(self, stream_id: str) -> StreamFacts | None: ...

    def ban(self, stream_id: str, user_id: str, *, kind: str = "ban", until: Until = None) -> None: ...

    def unban(self, stream_id: str, user_id: str, *, kind: str | None = "ban") -> None: ...

    def cohost(self, stream_id: str, user_id: str, added: bool) -> None: ...

    def end(self, stream_id: str) -> None: ...

    def invalidate(self, stream_id: str) -> None: ...

    def pin(self, stream_id: str) -> None: ...

    def unpin(self, stream_id: str) -> None: ...

    def due(self, interval: float, limit: int) -> list[str]: ...

    async def reload(self, stream_id: str, *, fresh: bool = True) -> StreamFacts | None: ...


def _sanctions(value: Iterable[str] | dict[str, Until]) -> dict[str, Until]:
    return dict(value) if isinstance(value, dict) else dict.fromkeys(value)


@dataclass(slots=True)
class StreamFacts:
    seller_id: str | None
    cohosts: set[str] = field(default_factory=set)
    banned: dict[str, Until] = field(default_factory=dict)  # a set is taken as "until lifted"
    muted: dict[str, Until] = field(default_factory=dict)
    ended: bool = False

    def __post_init__(self) -> None:
        self.banned = _sanctions(self.banned)
        self.muted = _sanctions(self.muted)

    def is_banned(self, user: str, now: float) -> bool:
        return _active(self.banned, user, now)

    def is_muted(self, user: str, now: float) -> bool:
        return _active(self.muted, user, now)

    def sanction(self, kind: str, user: str, until: Until) -> None:
        held = self.banned if kind == "ban" else self.muted
        if user in held and (held[user] is None or (until is not None and held[user] >= until)):  # type: ignore[operator]
            return  # the longer sanction stands
        held[user] = until

    def lift(self, kind: str | None, user: str) -> None:
        if kind in ("ban", None):
            self.banned.pop(user, None)
        if kind in ("mute", None):
            self.muted.pop(user, None)


def _active(held: dict[str, Until], user: str, now: float) -> bool:
    if user not in held:
        return False
    until = held[user]
    return until is None or until > now


FactsLoader = Callable[[str], Awaitable[StreamFacts | None]]


def stream_id_of(topic: str) -> str | None:
    """The stream a sub-topic names (``stream:{id}``); None for other topics and ``stream:``."""
    return parse_stream_topic(topic) or None


class StreamPolicy:
    """The rules above over bounded, event-fed facts (see the module docstring)."""

    def __init__(self, load: FactsLoader | None = None, *, max_streams: int = 10_000, ttl: float = 1.0,
                 missing_ttl: float = 5.0, monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 fresh_load: FactsLoader | None = None) -> None:
        self._load = load
        # reloads (after a subscription, periodic refreshes) look for lost events: past any cache
        self._fresh_load = fresh_load or load
        self.max_streams = max_streams
        self.ttl = ttl
        self.missing_ttl = missing_ttl
        self._monotonic = monotonic
        self.wall_clock = wall_clock
        self.pinned: dict[str, StreamFacts | None] = {}  # None: pinned before its facts arrived
        self.pinned_at: dict[str, float] = {}  # when each pinned stream was last read, oldest first
        self._pins: dict[str, int] = {}
        self.recent: OrderedDict[str, tuple[float, StreamFacts]] = OrderedDict()  # loaded at (monotonic)
        self.missing: OrderedDict[str, float] = OrderedDict()  # stream -> known absent until (monotonic)
        self.loads = 0  # database reads, for tests and metrics
        self._inflight: dict[str, list[int]] = {}

    # -- facts ------------------------------------------------------------------------------------

    def facts_of(self, stream_id: str) -> StreamFacts | None:
        facts = self.pinned.get(stream_id)
        if facts is None:
            hit = self.recent.get(stream_id)
            facts = hit[1] if hit is not None else None
        return facts

    def sizes(self) -> dict[str, int]:
        return {"pinned": len(self.pinned), "recent": len(self.recent), "missing": len(self.missing)}

    async def prepare(self, principal: Principal | None, topic: str) -> None:
        stream_id = stream_id_of(topic)
        if stream_id is None or self._load is None or is_staff(principal):
            return  # staff need no facts
        if self.pinned.get(stream_id) is not None:
            return  # kept fresh by the stream's events
        now = self._monotonic()
        hit = self.recent.get(stream_id)
        if hit is not None and now - hit[0] < self.ttl:
            return
        gone = self.missing.get(stream_id)
        if gone is not None and gone > now:
            return
        await self.reload(stream_id, fresh=False)

    async def reload(self, stream_id: str, *, fresh: bool = True) -> StreamFacts | None:
        """Read the stream's facts from the database (after a broker subscription began, when
        events published before it may have been missed); ``fresh=False``: a cache may answer."""
        load = self._fresh_load if fresh else self._load
        if load is None:
            return None
        flight = self._inflight.setdefault(stream_id, [0, 0])  # [loads running, events seen]
        flight[0] += 1
        try:
            for _ in range(3):
                seen = flight[1]
                self.loads += 1
                facts = await load(stream_id)
                if flight[1] == seen:
                    break  # else an event changed the facts while we read: its commit may be newer
        finally:
            flight[0] -= 1
            if not flight[0]:
                del self._inflight[stream_id]
        self.store(stream_id, facts)
        return facts

    def store(self, stream_id: str, facts: StreamFacts | None) -> None:
        now = self._monotonic()
        if facts is None:
            self.recent.pop(stream_id, None)
            if stream_id in self.pinned:
                self.pinned[stream_id] = None
            self.missing[stream_id] = now + self.missing_ttl
            self.missing.move_to_end(stream_id)
            _trim(self.missing, self.max_streams)
            return
        self.missing.pop(stream_id, None)
        if stream_id in self._pins:
            self.pinned[stream_id] = facts
            self._touch(stream_id, now)
            return
        self.recent[stream_id] = (now, facts)
        self.recent.move_to_end(stream_id)
        _trim(self.recent, self.max_streams)

    def pin(self, stream_id: str) -> None:
        """A local member needs the stream: keep its facts (fed by events) until :meth:`unpin`."""
        count = self._pins.get(stream_id, 0)
        self._pins[stream_id] = count + 1
        if count == 0:
            hit = self.recent.pop(stream_id, None)
            self.pinned[stream_id] = hit[1] if hit is not None else None
            self._touch(stream_id, hit[0] if hit is not None else self._monotonic())

    def unpin(self, stream_id: str) -> None:
        count = self._pins.get(stream_id, 0) - 1
        if count > 0:
            self._pins[stream_id] = count
            return
        self._pins.pop(stream_id, None)
        self.pinned.pop(stream_id, None)  # the last member left: nothing keeps it fresh any more
        self.pinned_at.pop(stream_id, None)

    def _touch(self, stream_id: str, at: float) -> None:
        self.pinned_at.pop(stream_id, None)
        self.pinned_at[stream_id] = at

    def due(self, interval: float, limit: int) -> list[str]:
        """Pinned streams last read ``interval`` seconds ago or more (at most ``limit``), marked as
        read now: events are best effort (services/events.py), so pinned facts are read again
        now and then, and a lost event costs at most that long."""
        now, out = self._monotonic(), list[str]()
        for stream_id, at in self.pinned_at.items():
            if at + interval > now or len(out) >= limit:
                break
            out.append(stream_id)
        for stream_id in out:
            self._touch(stream_id, now)
        return out

    # -- changes published by the services ------------------------------------------------------

    def _each(self, stream_id: str) -> list[StreamFacts]:
        flight = self._inflight.get(stream_id)
        if flight is not None:
            flight[1] += 1
        facts = self.facts_of(stream_id)
        return [facts] if facts is not None else []

    def cohost(self, stream_id: str, user: str, added: bool) -> None:
        for facts in self._each(stream_id):
            (facts.cohosts.add if added else facts.cohosts.discard)(user)

    def sanction(self, stream_id: str, user: str, kind: str, until: Until) -> None:
        for facts in self._each(stream_id):
            facts.sanction(kind, user, until)

    def lift(self, stream_id: str, user: str, kind: str | None) -> None:
        for facts in self._each(stream_id):
            facts.lift(kind, user)

    def end(self, stream_id: str) -> None:
        for facts in self._each(stream_id):
            facts.ended = True

    def ban(self, stream_id: str, user_id: str, *, kind: str = "ban", until: Until = None) -> None:
        """A sanction (``kind`` ``ban`` or ``mute``) until ``until`` (None: until lifted)."""
        self.sanction(stream_id, user_id, kind, until)

    def unban(self, stream_id: str, user_id: str, *, kind: str | None = "ban") -> None:
        """Lift a sanction of ``kind`` (None: both)."""
        self.lift(stream_id, user_id, kind)

    def invalidate(self, stream_id: str) -> None:
        """The stream changed (``services/stream_cache.py``): facts reused without local members
        and a "missing" mark are read again at their next use. Pinned facts follow the change's
        own event."""
        self.recent.pop(stream_id, None)
        self.missing.pop(stream_id, None)

    def forget(self, stream_id: str) -> None:
        self.recent.pop(stream_id, None)
        if stream_id in self.pinned:
            self.pinned[stream_id] = None

    # -- the rules --------------------------------------------------------------------------------

    def allowed(self, principal: Principal | None, topic: str, extension: str, action: str, *,
                private: bool = False, event: str | None = None) -> bool:
        stream_id = stream_id_of(topic)
        if stream_id is None:
            return not private or is_staff(principal)
        writes = extension == "broadcast" and action == "write"
        reserved = reserved_for(event) if writes and event is not None else None
        role = role_of(principal)
        if reserved == SERVER:
            return role == "service"
        if role in STAFF_ROLES:
            return True
        facts = self.facts_of(stream_id)
        if facts is None:
            return False
        user = getattr(principal, "user_id", None)
        # the clock is read only when someone is sanctioned: most streams have nobody banned or
        # muted, and every push of every member passes here
        if user is not None and facts.banned and facts.is_banned(user, self.wall_clock()):
            return False
        signed_in = user is not None and role != "anon"
        owner = signed_in and (user == facts.seller_id or user in facts.cohosts)
        if action == "read":
            if extension.startswith(PG_PREFIX):
                rule = TABLES.get(extension[len(PG_PREFIX):])
                rank = "owner" if owner else "signed_in" if signed_in else "anyone"
                return rule is not None and rank_allows(rank, rule.read)
            return signed_in or not private
        if not signed_in or facts.ended or (facts.muted and facts.is_muted(user, self.wall_clock())):  # type: ignore[arg-type]
            return False
        if reserved == HOST:
            return owner
        return True


def _trim(cache: OrderedDict[str, Any], size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)


class AllowAll:
    """For tests and the standalone benchmark server: every valid token may do everything.

    It decides from nothing, so what the realtime service tells it about streams (sanctions,
    co-hosts, ends, invalidations, local demand) changes nothing and is dropped; it knows no facts
    (``facts_of`` is None), so no change ever re-authorizes a channel under it.
    """

    async def prepare(self, principal: Principal | None, topic: str) -> None:
        return None

    def allowed(self, principal: Principal | None, topic: str, extension: str, action: str, *,
                private: bool = False, event: str | None = None) -> bool:
        return True

    def facts_of(self, stream_id: str) -> StreamFacts | None:
        return None

    def ban(self, stream_id: str, user_id: str, *, kind: str = "ban", until: Until = None) -> None:
        return None

    def unban(self, stream_id: str, user_id: str, *, kind: str | None = "ban") -> None:
        return None

    def cohost(self, stream_id: str, user_id: str, added: bool) -> None:
        return None

    def end(self, stream_id: str) -> None:
        return None

    def invalidate(self, stream_id: str) -> None:
        return None

    def pin(self, stream_id: str) -> None:
        return None

    def unpin(self, stream_id: str) -> None:
        return None

    def due(self, interval: float, limit: int) -> list[str]:
        return []

    async def reload(self, stream_id: str, *, fresh: bool = True) -> StreamFacts | None:
        return None


if TYPE_CHECKING:  # both implement the whole protocol (mypy checks these)
    _policy: Authorizer = StreamPolicy()
    _allow_all: Authorizer = AllowAll()
