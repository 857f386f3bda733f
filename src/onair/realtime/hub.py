"""The hub: topics, their members, and fan-out of shared bytes.

Rules that make it fast (DESIGN "Performance notes", STYLE §7–§9):
* Messages published to a topic within one event-loop turn are framed once per serializer into one
  buffer at the end of the turn (``flush``), and that buffer is written to every member: one write
  per member per turn, however many messages, and no per-member encoding or objects.
* Fan-out never awaits: a member whose transport is full gets the bytes queued on its
  :class:`Client`, and past its bound it is cut off as a slow consumer after the loop.
* Membership changes and direct sends flush the topic's pending batch first, so every message
  reaches exactly the members present when it was published, in publish order.
* One member's failure is that member's alone: a write that raises cuts that client off and the
  loop goes on with the next member (as websockets' ``broadcast()`` does). The loop pays nothing
  for it per member: one try around the whole loop, resumed after the failed member. A batch
  whose fan-out aborts anyway (a bug outside the writes) is re-queued once for the members it did
  not reach, so a topic never stalls with an unscheduled pending list.
* Members are written in a rotating order: the start index moves by the golden ratio of the
  member count every flush (a low-discrepancy sequence), so no subscriber is systematically the
  last one written and neighbours in join order do not share a fate.
* Who gets what is precomputed per topic: the write order of each serializer's full-read
  members is cached until the membership changes, and the members a batch skips (a sender
  without ``self``, members outside a message's recipients) are removed from it by set
  operations and served apart. The loop over the rest is one write per member. When the skipped
  members are a large share, the general per-member path runs instead.

The hub is synchronous and owns no sockets, timers or database: the shell calls it, a scheduler
given at construction runs ``flush`` (``loop.call_soon`` in the server, by hand in tests).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from onair.realtime.changes import ChangeIndex, RowChange, Sub
from onair.realtime.client import Client
from onair.realtime.protocol import messages as m
from onair.realtime.protocol import presence as p
from onair.realtime.protocol.errors import SLOW_CONSUMER, WRITE_FAILED, Disconnect
from onair.realtime.protocol.join import JoinConfig
from onair.realtime.protocol.messages import Message
from onair.realtime.protocol.serializer import SERIALIZERS
from onair.realtime.protocol.wsframe import frame
from onair.tally import SECONDS, Tally

log = logging.getLogger("onair.realtime")
_SERIALIZERS = (SERIALIZERS["1.0.0"], SERIALIZERS["2.0.0"])
_GOLDEN = 0.6180339887498949  # rotation step as a share of the member count
BrokerTopics = Callable[[str, JoinConfig], Iterable[str]]
Interests = Callable[[str, JoinConfig], Iterable[str]]


def no_broker_topics(topic: str, config: JoinConfig) -> Iterable[str]:
    return ()


def no_interests(topic: str, config: JoinConfig) -> Iterable[str]:
    return ()


def _user_of(principal: Any) -> str | None:
    return getattr(principal, "user_id", None)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def _rotated(topic: Topic, order: list[Client]) -> list[Client]:
    """``order`` starting at this flush's rotation point (``order`` itself is never changed)."""
    n = len(order)
    start = int((topic.turn * _GOLDEN) % 1.0 * n)
    return order[start:] + order[:start] if start else order


@dataclass(slots=True, eq=False)
class Member:
    client: Client
    topic: str
    join_ref: str | None
    config: JoinConfig
    reads_broadcast: bool = True
    reads_presence: bool = True
    presence_key: str = ""
    presence: p.PresenceMeta | None = None
    subs: list[Sub] = field(default_factory=list)
    broker_topics: tuple[str, ...] = ()
    interests: tuple[str, ...] = ()  # the hub's ``interests`` hook for this join (see Hub)
    principal: Any = None
    uid: int = 0  # names this join's presence entry in the shared store
    token: str | None = None  # the channel's access token (None: the socket's apikey)


class _Item:
    """One pending fan-out message; frames are built lazily, once per serializer."""

    __slots__ = ("exclude", "frames", "msg", "presence", "raw", "recipients", "retried")

    def __init__(self, msg: Message | None, raw: tuple[str, str, dict[str, Any], bytes] | None,
                 exclude: Client | None, presence: bool,
                 recipients: dict[Client, None] | set[Client] | None = None) -> None:
        self.msg = msg
        self.raw = raw
        self.exclude = exclude
        self.presence = presence
        self.recipients = recipients  # None: every member (a postgres change names its own)
        self.frames: list[bytes | bool | None] = [False, False]
        self.retried = False  # re-queued once after an aborted fan-out; dropped if it aborts again

    def reaches(self, client: Client) -> bool:
        return self.exclude is not client and (self.recipients is None or client in self.recipients)

    def frame(self, vsn: int) -> bytes | None:
        f = self.frames[vsn]
        if f is False:
            serializer = _SERIALIZERS[vsn]
            try:
                if self.msg is not None:
                    f = frame(serializer.encode(self.msg))
                else:
                    assert self.raw is not None
                    body = serializer.encode_raw_broadcast(*self.raw)
                    f = None if body is None else frame(body, binary=True)
            except TypeError:  # JSON nested past orjson's 255 levels: drop this one, not the batch
                log.info("realtime: dropped a message that cannot be encoded")
                f = None
            except Exception:  # any other encoding fault: still this message only
                log.exception("realtime: dropped a message that failed to encode")
                f = None
            self.frames[vsn] = f
        return f  # type: ignore[return-value]


class Topic:
    __slots__ = ("full", "members", "name", "orders", "partial", "pending", "positions", "presence", "remote",
                 "turn")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[Client, Member] = {}
        self.full: tuple[dict[Client, None], dict[Client, None]] = ({}, {})  # read everything
        self.partial: dict[Client, Member] = {}  # private-channel members lacking a read right
        self.pending: list[_Item] = []
        self.presence: dict[str, p.PresenceMeta] = {}  # phx_ref -> entry (local joins)
        self.remote: dict[str, p.PresenceMeta] | None = None  # other processes' entries, once known
        self.turn = 0  # flushes so far: where the rotating write order starts
        # per serializer, cached until ``full`` changes: the write order and each client's index
        self.orders: list[list[Client] | None] = [None, None]
        self.positions: list[dict[Client, int] | None] = [None, None]

    def changed(self, vsn: int) -> None:
        """The full-read members of serializer ``vsn`` changed: drop the cached order."""
        self.orders[vsn] = None
        self.positions[vsn] = None

    def order(self, vsn: int) -> list[Client]:
        order = self.orders[vsn]
        if order is None:
            order = self.orders[vsn] = list(self.full[vsn])
        return order

    def without(self, vsn: int, skipped: set[Client]) -> list[Client]:
        """The cached write order minus ``skipped`` (a few members), built from slices."""
        order = self.order(vsn)
        positions = self.positions[vsn]
        if positions is None:
            positions = self.positions[vsn] = {c: i for i, c in enumerate(order)}
        rest: list[Client] = []
        prev = 0
        for i in sorted(positions[c] for c in skipped):
            rest += order[prev:i]
            prev = i + 1
        rest += order[prev:]
        return rest

    def receives(self, member: Member, item: _Item) -> bool:
        if item.recipients is not None:
            return member.client in item.recipients  # authorized per binding at join
        return member.reads_presence if item.presence else member.reads_broadcast


@dataclass(slots=True)
class HubStats:
    """Plain counters, read by ``onair.metrics`` at scrape time (nothing here costs a lock)."""

    published: int = 0
    deliveries: int = 0
    writes: int = 0
    slow_consumers: int = 0
    write_failures: int = 0
    aborted_flushes: int = 0
    joins: int = 0
    joins_refused: dict[str, int] = field(default_factory=dict)  # reason -> joins
    limit_hits: dict[str, int] = field(default_factory=dict)  # limit -> times it refused something
    flush_seconds: Tally = field(default_factory=lambda: Tally(SECONDS))  # one per loop turn
    delivery_lag: Tally = field(default_factory=lambda: Tally(SECONDS))  # commit -> fan-out


class Hub:
    # The fast path runs while at most 1/exceptions_share of a serializer's members miss part of
    # a batch; past that, per-member signatures (``_write_selective``) cost less than slicing.
    exceptions_share = 8

    def __init__(
        self,
        schedule: Callable[[Callable[[], None]], Any],
        *,
        node_id: str = "n",
        broker_topics: BrokerTopics = no_broker_topics,
        on_broker_retain: Callable[[str], None] = lambda topic: None,
        on_broker_release: Callable[[str], None] = lambda topic: None,
        on_presence: Callable[[Member, p.PresenceMeta | None], None] | None = None,
        interests: Interests = no_interests,
    ) -> None:
        """``interests(topic, config)`` names what a join is about (the realtime service: the
        streams it reads), so :meth:`interested` finds those members without a scan of every
        topic; ``broker_topics`` names the broker topics it holds (counted in ``broker_refs``)."""
        self._schedule = schedule
        self._scheduled = False
        self._dirty: list[Topic] = []
        self._doomed: list[tuple[Client, Disconnect]] = []
        self.node_id = node_id
        self.topics: dict[str, Topic] = {}
        self.clients: dict[Client, None] = {}
        self.users: dict[str, int] = {}  # user -> sockets counting toward it
        self.ips: dict[str, int] = {}  # client IP -> sockets
        self.changes = ChangeIndex()
        self.broker_refs: dict[str, int] = {}
        self._broker_topics = broker_topics
        self._on_retain = on_broker_retain
        self._on_release = on_broker_release
        self._refs = itertools.count(1)
        self._on_presence = on_presence  # shared presence: (member, new entry or None for leave)
        self._interests = interests
        self._interested: dict[str, dict[Member, None]] = {}  # interest -> members, in join order
        self.stats = HubStats()

    # -- connections ----------------------------------------------------------------------------

    def connect(self, client: Client) -> None:
        self.clients[client] = None
        if client.ip is not None:
            self.ips[client.ip] = self.ips.get(client.ip, 0) + 1
        if client.user_id is not None:
            self.hold_user(client, client.user_id)

    def connections_of(self, user_id: str) -> int:
        """Sockets counting toward ``user_id``: its apikey or one of its channels names the user."""
        return self.users.get(user_id, 0)

    def connections_from(self, ip: str) -> int:
        return self.ips.get(ip, 0)

    def hold_user(self, client: Client, user_id: str) -> None:
        held = client.users.get(user_id, 0)
        client.users[user_id] = held + 1
        if not held:
            self.users[user_id] = self.users.get(user_id, 0) + 1

    def drop_user(self, client: Client, user_id: str) -> None:
        held = client.users.get(user_id, 0) - 1
        if held > 0:
            client.users[user_id] = held
            return
        client.users.pop(user_id, None)
        _decrement(self.users, user_id)

    def set_principal(self, member: Member, principal: Any) -> None:
        """A token refresh changed who a membership acts for: move its user count along."""
        old, new = _user_of(member.principal), _user_of(principal)
        member.principal = principal
        if old != new:
            if new is not None:
                self.hold_user(member.client, new)
            if old is not None:
                self.drop_user(member.client, old)

    def disconnect(self, client: Client, reason: Disconnect | None = None) -> None:
        """Drop every membership of ``client`` (presence leaves at once) and close its socket."""
        if client not in self.clients:
            return
        del self.clients[client]
        for topic in client.protocol.channels.topics():
            self._remove(client, topic)
        for user in client.users:
            _decrement(self.users, user)
        client.users.clear()
        if client.ip is not None:
            _decrement(self.ips, client.ip)
        client.mark_closed()
        if reason is not None and not client.transport.is_closing():
            try:
                client.close(reason.code, reason.reason)
            except Exception:  # a socket that broke: it is gone from the hub anyway
                log.warning("realtime: closing %r failed", client, exc_info=True)
        client.release()

    def overflow(self, client: Client) -> None:
        """Called by a client past its pending bound, possibly in the middle of a fan-out loop."""
        self.stats.slow_consumers += 1
        log.warning("realtime: cutting off slow consumer %r (%d bytes pending)", client, client.pending_bytes)
        self._doomed.append((client, SLOW_CONSUMER))
        self._request_flush()

    # -- membership -----------------------------------------------------------------------------

    def join(self, client: Client, topic_name: str, join_ref: str | None, config: JoinConfig, *,
             reads_broadcast: bool = True, reads_presence: bool = True, presence_key: str = "",
             principal: Any = None) -> Member:
        """Add a member (replacing an older join of the same client and topic)."""
        self._remove(client, topic_name)
        topic = self.topics.get(topic_name)
        if topic is None:
            topic = self.topics[topic_name] = Topic(topic_name)
        elif topic.pending:
            self._flush_topic(topic)
        self.stats.joins += 1
        member = Member(client, topic_name, join_ref, config, reads_broadcast, reads_presence,
                        presence_key or f"{self.node_id}-{next(self._refs)}", principal=principal,
                        uid=next(self._refs))
        topic.members[client] = member
        user = _user_of(principal)
        if user is not None:
            self.hold_user(client, user)
        if reads_broadcast and reads_presence:
            topic.full[client.vsn_index][client] = None
            topic.changed(client.vsn_index)
        else:
            topic.partial[client] = member
        for binding in config.bindings:
            if binding.error is None:
                sub = Sub(client, topic_name, binding)
                member.subs.append(sub)
                self.changes.add(sub)
        member.broker_topics = self.broker_topics_of(topic_name, config)
        for name in member.broker_topics:
            self._retain(name)
        self._index(member)
        return member

    def broker_topics_of(self, topic_name: str, config: JoinConfig) -> tuple[str, ...]:
        """The broker topics a join of ``topic_name`` with ``config`` will hold."""
        return tuple(dict.fromkeys(self._broker_topics(topic_name, config)))

    def rebind(self, client: Client, topic_name: str, config: JoinConfig) -> None:
        """Swap a member's postgres_changes bindings (after a token refresh re-authorized them)."""
        member = self.member(client, topic_name)
        if member is None:
            return
        topic = self.topics[topic_name]
        if topic.pending:
            self._flush_topic(topic)  # pending changes hold the index's recipient sets
        for sub in member.subs:
            self.changes.remove(sub)
        member.subs = []
        for binding in config.bindings:
            if binding.error is None:
                sub = Sub(client, topic_name, binding)
                member.subs.append(sub)
                self.changes.add(sub)
        old = member.broker_topics
        self._unindex(member)
        member.config = config
        self._index(member)
        member.broker_topics = tuple(dict.fromkeys(self._broker_topics(topic_name, config)))
        for name in member.broker_topics:
            self._retain(name)
        for name in old:
            self._release(name)

    def leave(self, client: Client, topic_name: str) -> None:
        self._remove(client, topic_name)

    def member(self, client: Client, topic_name: str) -> Member | None:
        topic = self.topics.get(topic_name)
        return topic.members.get(client) if topic else None

    def _remove(self, client: Client, topic_name: str) -> None:
        topic = self.topics.get(topic_name)
        if topic is None or client not in topic.members:
            return
        if topic.pending:
            self._flush_topic(topic)
        member = topic.members.pop(client)
        user = _user_of(member.principal)
        if user is not None:
            self.drop_user(client, user)
        if topic.full[client.vsn_index].pop(client, False) is None:
            topic.changed(client.vsn_index)
        topic.partial.pop(client, None)
        for sub in member.subs:
            self.changes.remove(sub)
        if member.presence is not None:
            entry = member.presence
            member.presence = None
            del topic.presence[entry.ref]
            self._publish(topic, Message(None, None, topic_name, m.PRESENCE_DIFF, p.diff([], [entry])), presence=True)
            if self._on_presence is not None:
                self._on_presence(member, None)
        for name in member.broker_topics:
            self._release(name)
        self._unindex(member)
        if not topic.members:
            if topic.pending:
                self._flush_topic(topic)
            del self.topics[topic_name]

    def _index(self, member: Member) -> None:
        member.interests = tuple(dict.fromkeys(self._interests(member.topic, member.config)))
        for key in member.interests:
            self._interested.setdefault(key, {})[member] = None

    def _unindex(self, member: Member) -> None:
        for key in member.interests:
            members = self._interested.get(key)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del self._interested[key]
        member.interests = ()

    def interested(self, key: str) -> list[Member]:
        """The members whose join names ``key`` among its interests, in join order: a change
        about one stream visits its readers only, however many other clients are connected."""
        members = self._interested.get(key)
        return list(members) if members else []

    def _retain(self, name: str) -> None:
        count = self.broker_refs.get(name, 0)
        self.broker_refs[name] = count + 1
        if count == 0:
            self._on_retain(name)

    def _release(self, name: str) -> None:
        count = self.broker_refs.get(name, 0) - 1
        if count > 0:
            self.broker_refs[name] = count
        else:
            self.broker_refs.pop(name, None)
            self._on_release(name)

    # -- fan-out --------------------------------------------------------------------------------

    def broadcast(self, topic_name: str, event: str, payload: Any, *, raw: bytes | None = None,
                  sender: Client | None = None, meta: dict[str, Any] | None = None,
                  recipients: set[Client] | None = None) -> None:
        """Fan a user broadcast out to the topic; the sender is skipped unless it joined with
        ``broadcast.self``. ``raw`` carries raw-byte payloads (binary encoding 0). A server
        event meant for a few members names them in ``recipients``."""
        topic = self.topics.get(topic_name)
        if topic is None:
            return
        exclude = None
        if sender is not None:
            member = topic.members.get(sender)
            if member is None or not member.config.broadcast_self:
                exclude = sender
        if raw is not None:
            self._publish_item(topic, _Item(None, (topic_name, event, meta or {}, raw), exclude, False, recipients))
        else:
            body = m.broadcast_payload(event, payload, meta)
            self._publish_item(topic, _Item(Message(None, None, topic_name, m.BROADCAST, body), None, exclude, False,
                                            recipients))

    def notify(self, topic_name: str, status: str, message: str) -> None:
        """A ``system`` message (extension ``system``) to every member of the topic, in order
        with its pending fan-out; ``join_ref`` null, so it reaches whichever join is current."""
        topic = self.topics.get(topic_name)
        if topic is None:
            return
        msg = m.system(None, topic_name, "system", status, message)
        self._publish_item(topic, _Item(msg, None, None, False, dict.fromkeys(topic.members)))

    def _publish(self, topic: Topic, msg: Message, presence: bool = False) -> None:
        self._publish_item(topic, _Item(msg, None, None, presence))

    def _publish_item(self, topic: Topic, item: _Item) -> None:
        self.stats.published += 1
        if not topic.pending:
            self._dirty.append(topic)
        topic.pending.append(item)
        self._request_flush()

    def _request_flush(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)

    def flush(self) -> None:
        """Write every pending batch; then cut off the slow consumers found while writing."""
        self._scheduled = False
        started = time.perf_counter()
        dirty, self._dirty = self._dirty, []
        for topic in dirty:
            if topic.pending:
                self._flush_topic(topic)
        while self._doomed:
            doomed, self._doomed = self._doomed, []
            for client, reason in doomed:
                self.disconnect(client, reason)
            dirty, self._dirty = self._dirty, []
            for topic in dirty:  # leave diffs of the disconnected
                if topic.pending:
                    self._flush_topic(topic)
        self.stats.flush_seconds.observe(time.perf_counter() - started)

    def _flush_topic(self, topic: Topic) -> None:
        items, topic.pending = topic.pending, []
        topic.turn += 1
        reached: list[Iterable[Client]] = []  # member groups done: what an abort must not repeat
        try:
            self._fan_out(topic, items, reached)
        except Exception:
            self.stats.aborted_flushes += 1
            log.exception("realtime: fan-out on %s aborted; re-queueing it for the members not reached", topic.name)
            self._requeue(topic, items, reached)

    def _fan_out(self, topic: Topic, items: list[_Item], reached: list[Iterable[Client]]) -> None:
        stats = self.stats
        for vsn, group in enumerate(topic.full):
            if not group:
                continue
            frames = [it.frame(vsn) for it in items]
            blob = b"".join(f for f in frames if f)
            if not blob:
                reached.append(group)
                continue
            selective = [it for it in items if it.exclude is not None or it.recipients is not None]
            stats.deliveries += len(group) * len(items)
            stats.writes += len(group)
            skipped = self._skipped(group, selective)
            if skipped is None:  # many members miss something: per-member signatures
                self._write_selective(_rotated(topic, list(group)), items, frames, selective, blob)
            elif not skipped:
                self._write_all(_rotated(topic, topic.order(vsn)), blob)
            else:
                self._write_all(_rotated(topic, topic.without(vsn, skipped)), blob)
                self._write_selective(list(skipped), items, frames, selective, blob)
            reached.append(group)
        if topic.partial:
            def partial(client: Client, member: Member) -> None:
                own = b"".join(
                    f for it in items
                    if it.exclude is not client and topic.receives(member, it) and (f := it.frame(client.vsn_index))
                )
                if own:
                    stats.writes += 1
                    client.send(own)

            self._each(list(topic.partial.items()), partial)

    def _skipped(self, group: dict[Client, None], selective: list[_Item]) -> set[Client] | None:
        """The members of ``group`` that miss part of the batch, or None when they are more than
        1/exceptions_share of it (then the general path is cheaper than slicing them out)."""
        skipped: set[Client] = set()
        if not selective:
            return skipped
        limit = len(group) // self.exceptions_share
        for it in selective:
            if it.exclude is not None and it.exclude in group:
                skipped.add(it.exclude)
            if it.recipients is not None:
                if len(group) - len(it.recipients) > limit:
                    return None
                skipped |= group.keys() - it.recipients
            if len(skipped) > limit:
                return None
        return skipped

    def _write_selective(self, clients: list[Client], items: list[_Item], frames: list[bytes | None],
                         selective: list[_Item], blob: bytes) -> None:
        """Some messages skip some members (the sender without `self`, postgres changes for
        other bindings): members with the same pattern share one buffer."""
        blobs: dict[tuple[bool, ...], bytes] = {(True,) * len(selective): blob}

        def write(c: Client) -> None:
            sig = tuple([it.reaches(c) for it in selective])
            own = blobs.get(sig)
            if own is None:
                own = blobs[sig] = b"".join(f for it, f in zip(items, frames) if f and it.reaches(c))
            if own:
                c.send(own)

        self._each(clients, write)

    def _write_all(self, clients: list[Client], blob: bytes) -> None:
        """The hot loop: one write per member, and a member whose write raises is cut off
        without costing the others their batch. The try is around the loop, not each write:
        after a failure the loop resumes behind the failed member."""
        pos, end = 0, len(clients)
        while pos < end:
            c = None
            try:
                for c in clients if pos == 0 else clients[pos:]:
                    if c.direct:
                        c.write(blob)
                    else:
                        c.enqueue(blob)
                return
            except Exception as exc:  # noqa: BLE001 — whatever broke, it broke for this member only
                pos = clients.index(c, pos) + 1  # type: ignore[arg-type]
                self._write_failed(c, exc)  # type: ignore[arg-type]

    def _each(self, entries: list[Any], write: Callable[..., None]) -> None:
        """``write`` each entry (a client, or a (client, member) pair), isolating failures."""
        pos, end = 0, len(entries)
        while pos < end:
            entry = None
            try:
                for entry in entries if pos == 0 else entries[pos:]:
                    if type(entry) is tuple:
                        write(*entry)
                    else:
                        write(entry)
                return
            except Exception as exc:  # noqa: BLE001 — whatever broke, it broke for this member only
                pos = entries.index(entry, pos) + 1
                self._write_failed(entry[0] if type(entry) is tuple else entry, exc)  # type: ignore[arg-type]

    def _write_failed(self, client: Client, exc: Exception) -> None:
        """A write to ``client`` raised: it gets nothing more and is closed after the loop."""
        self.stats.write_failures += 1
        log.warning("realtime: write to %r failed (%s); closing it", client, exc)
        if not client.closed:
            client.mark_closed()
            self._doomed.append((client, WRITE_FAILED))
            self._request_flush()

    def _requeue(self, topic: Topic, items: list[_Item], reached: list[Iterable[Client]]) -> None:
        """An aborted fan-out's batch goes back to the front of the topic's queue, addressed to
        the members it had not reached (as recipients, so members who join later do not get it);
        an item that aborts twice is dropped."""
        done = {c for group in reached for c in group}
        again: list[_Item] = []
        for it in items:
            if it.retried:
                log.error("realtime: dropped a message on %s whose fan-out failed twice", topic.name)
                continue
            rest = {c: None for c, member in topic.members.items()
                    if c not in done and topic.receives(member, it)}
            retry = _Item(it.msg, it.raw, it.exclude, it.presence, rest)
            retry.frames = it.frames
            retry.retried = True
            again.append(retry)
        if not again:
            return
        if not topic.pending:
            self._dirty.append(topic)
        topic.pending[:0] = again
        self._request_flush()

    def send(self, client: Client, msg: Message) -> None:
        """A direct push to one member (presence_state, system), ordered after pending fan-out."""
        topic = self.topics.get(msg.topic)
        if topic is not None and topic.pending:
            self._flush_topic(topic)
        try:
            client.send(frame(client.protocol.serializer.encode(msg)))
        except Exception as exc:  # noqa: BLE001 — a broken socket: close it, never raise to the caller
            self._write_failed(client, exc)

    def send_protocol_output(self, client: Client, topic_name: str | None = None) -> None:
        if topic_name is not None:
            topic = self.topics.get(topic_name)
            if topic is not None and topic.pending:
                self._flush_topic(topic)
        try:
            client.flush_protocol()
        except Exception as exc:  # noqa: BLE001 — a broken socket: close it, never raise to the caller
            self._write_failed(client, exc)

    # -- presence -------------------------------------------------------------------------------

    def track(self, client: Client, topic_name: str, meta: dict[str, Any]) -> None:
        topic = self.topics.get(topic_name)
        member = topic.members.get(client) if topic else None
        if topic is None or member is None:
            return
        old = member.presence
        if old is not None and old.meta == meta:
            return  # the same payload again is a no-op (spec §5.1)
        entry = p.PresenceMeta(member.presence_key, f"{self.node_id}{next(self._refs):x}", meta,
                               old.ref if old else None)
        if old is not None:
            del topic.presence[old.ref]
        topic.presence[entry.ref] = entry
        member.presence = entry
        self._publish(topic, Message(None, None, topic_name, m.PRESENCE_DIFF,
                                     p.diff([entry], [old] if old else [])), presence=True)
        if self._on_presence is not None:
            self._on_presence(member, entry)

    def untrack(self, client: Client, topic_name: str) -> None:
        topic = self.topics.get(topic_name)
        member = topic.members.get(client) if topic else None
        if topic is None or member is None or member.presence is None:
            return
        entry = member.presence
        member.presence = None
        del topic.presence[entry.ref]
        self._publish(topic, Message(None, None, topic_name, m.PRESENCE_DIFF, p.diff([], [entry])), presence=True)
        if self._on_presence is not None:
            self._on_presence(member, None)

    def remote_presence(self, topic_name: str, joins: dict[str, Any], leaves: dict[str, Any]) -> None:
        """A presence_diff of another process (shared presence): remember it and fan it out."""
        topic = self.topics.get(topic_name)
        if topic is None:
            return
        remote = topic.remote if topic.remote is not None else {}
        for key, entry in leaves.items():
            for meta in entry.get("metas", []):
                remote.pop(str(meta.get("phx_ref")), None)
        for key, entry in joins.items():
            for meta in entry.get("metas", []):
                ref = str(meta.get("phx_ref"))
                body = {k: v for k, v in meta.items() if k not in ("phx_ref", "phx_ref_prev")}
                remote[ref] = p.PresenceMeta(key, ref, body)
        topic.remote = remote
        self._publish(topic, Message(None, None, topic_name, m.PRESENCE_DIFF, {"joins": joins, "leaves": leaves}),
                      presence=True)

    def needs_remote_presence(self, topic_name: str) -> bool:
        topic = self.topics.get(topic_name)
        return topic is not None and topic.remote is None

    def seed_remote_presence(self, topic_name: str, state: dict[str, list[dict[str, Any]]]) -> None:
        """The shared store's state when this process starts following a topic (local entries,
        already known, are skipped)."""
        topic = self.topics.get(topic_name)
        if topic is None:
            return
        remote = topic.remote if topic.remote is not None else {}
        for key, metas in state.items():
            for meta in metas:
                ref = str(meta.get("phx_ref"))
                if ref not in topic.presence:
                    remote.setdefault(ref, p.PresenceMeta(key, ref, {k: v for k, v in meta.items() if k != "phx_ref"}))
        topic.remote = remote

    def local_presence(self) -> list[Member]:
        return [mem for t in self.topics.values() for mem in t.members.values() if mem.presence is not None]

    def presence_state(self, topic_name: str) -> dict[str, Any]:
        topic = self.topics.get(topic_name)
        if topic is None:
            return {}
        entries = list(topic.presence.values())
        if topic.remote:
            entries += list(topic.remote.values())
        return p.state(entries)

    # -- postgres_changes -----------------------------------------------------------------------

    def change(self, change: RowChange) -> int:
        """Deliver a committed row change to the matching bindings; returns how many channels."""
        matched = self.changes.match(change.schema, change.table, change.type, change.matched_record)
        if not matched:
            return 0
        data = change.data()
        by_topic: dict[str, list[Any]] = {}
        for group in matched:
            by_topic.setdefault(group.topic, []).append(group)
        reached = 0
        for topic_name, groups in by_topic.items():
            topic = self.topics.get(topic_name)
            if topic is None:
                continue
            if len(groups) == 1:  # the usual case: one binding per channel
                clients = groups[0].clients
                parts: list[tuple[tuple[int, ...], Any]] = [((groups[0].binding.id,), clients)]
                reached += len(clients)
            else:  # a member holding several matching bindings gets all their ids in one message
                ids_of: dict[Client, list[int]] = {}
                for group in groups:
                    for client in group.clients:
                        ids = ids_of.setdefault(client, [])
                        if group.binding.id not in ids:
                            ids.append(group.binding.id)
                split: dict[tuple[int, ...], dict[Client, None]] = {}
                for client, ids in ids_of.items():
                    split.setdefault(tuple(ids), {})[client] = None
                parts = list(split.items())
                reached += len(ids_of)
            for binding_ids, clients in parts:
                msg = Message(None, None, topic_name, m.POSTGRES_CHANGES, {"ids": list(binding_ids), "data": data})
                # usually every member of a stream channel holds the same binding: no filter needed
                everyone = len(clients) == len(topic.members)
                self._publish_item(topic, _Item(msg, None, None, False, None if everyone else clients))
        return reached

    # -- introspection ----------------------------------------------------------------------------

    def members_of(self, topic_name: str) -> list[Member]:
        topic = self.topics.get(topic_name)
        return list(topic.members.values()) if topic else []
