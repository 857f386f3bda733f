"""What a stream's broker events do to this process's open channels.

Committed events of stream X arrive on broker topic ``stream:{X}`` and become postgres_changes
messages and server broadcasts on ``realtime:stream:{X}``; channel broadcasts from other nodes
arrive on ``realtime:{sub-topic}`` and are fanned out locally. On the way they keep the
authorization of open channels current: sanctions, co-host changes and the end of a stream reach
the authorizer and re-check the stream's readers at once (never only at join), and an ended
stream's channel is closed once the last state and chat rows have had time to arrive.

Only several processes can publish one stream's chat rows out of seq order, so in distributed mode
chat rows are held for a seq gap (``ordering.ChatOrder``) up to a short wait; when the broker link
drops, held rows are released at the loss instead of waiting out a gap that cannot fill any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from onair.logs import log_failure
from onair.realtime.changes import RowChange
from onair.realtime.client import Client
from onair.realtime.hub import Hub
from onair.realtime.ordering import ChatOrder
from onair.realtime.policies import Authorizer, is_staff, role_of
from onair.realtime.visibility import EVENTS, SUBJECT_EVENTS
from onair.topics import (
    ChannelBroadcast,
    Envelope,
    PresenceDiff,
    RowEvent,
    StreamBroadcast,
    StreamState,
    ViewerCount,
    parse_stream_topic,
    stream_channel,
)

log = logging.getLogger("onair.realtime")
STREAM_ENDED = "The stream has ended"


class Scheduler(Protocol):
    """The node's event loop (None before start) and its tasks (``node.Node``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    def spawn(self, coro: Any) -> None: ...


class Channels(Protocol):
    """What is done to one member's channel (``dispatcher.Dispatcher``)."""

    def shutdown(self, client: Client, topic: str, message: str, status: str = "error") -> None: ...

    def reauthorize(self, client: Client, topic: str) -> None: ...


class StreamEvents:
    def __init__(self, hub: Hub, channels: Channels, authorizer: Authorizer, scheduler: Scheduler, *,
                 node_id: str, wall_clock: Callable[[], float], chat_order: ChatOrder[RowChange] | None = None,
                 ended_close_delay: float = 2.0, policy_refresh_interval: float = 30.0,
                 shared_presence: Callable[[], bool] = lambda: False) -> None:
        self.hub = hub
        self.channels = channels
        self.authorizer = authorizer
        self.scheduler = scheduler
        self.node_id = node_id
        self.wall_clock = wall_clock
        self.policy_refresh_interval = policy_refresh_interval
        self.shared_presence = shared_presence  # other processes' presence is tracked here
        self._stream_versions: dict[str, int] = {}
        self.ended_close_delay = ended_close_delay
        self._ended: dict[str, float] = {}  # ended stream -> when its channel closes (loop time)
        self.chat_order = chat_order  # None: one process publishes every chat row, in seq order
        self._chat_order_timer: asyncio.TimerHandle | None = None
        # what each broker envelope does here (a kind this version does not know is skipped)
        self.handlers: Mapping[type[Envelope], Callable[[str, Any], None]] = {
            RowEvent: self._on_row, StreamState: self._on_stream_state,
            ViewerCount: self._on_viewer_count, StreamBroadcast: self._on_stream_broadcast,
            ChannelBroadcast: self._on_channel_broadcast, PresenceDiff: self._on_presence_diff,
        }

    # -- what the node tells (node.NodeHandler) ---------------------------------------------------

    def retained(self, stream_id: str) -> None:
        self.authorizer.pin(stream_id)  # fed by this topic's events from now on

    def subscribed(self, stream_id: str) -> None:
        # Events published between the join's facts and this subscription were missed:
        # read the facts again now that every later event reaches us.
        self.scheduler.spawn(self._refresh_facts(stream_id))

    def released(self, stream_id: str) -> None:
        self.authorizer.unpin(stream_id)  # the last local member left

    def unsubscribed(self, stream_id: str) -> None:
        if self.chat_order is not None:
            self.chat_order.forget(stream_id)

    def link_changed(self) -> None:
        """Held chat rows go out now: the gaps they wait for cannot fill any more."""
        if self.chat_order is None:
            return
        if self._chat_order_timer is not None:
            self._chat_order_timer.cancel()
            self._chat_order_timer = None
        try:
            for ready in self.chat_order.reset():
                self.hub.change(ready)
        except Exception:
            log.exception("realtime: delivering held chat rows failed")

    def sweep(self, now: float, wall: float) -> None:
        self._forget_idle_streams()
        self._sweep_ended(now)
        for stream_id in self.authorizer.due(self.policy_refresh_interval, 100):
            self.scheduler.spawn(self._refresh_facts(stream_id))

    def _forget_idle_streams(self) -> None:
        """Stream versions are needed only while a local channel of the stream may get a late,
        older state: drop the rest, so the map follows open channels, not every stream ever seen."""
        topics = self.hub.topics
        idle = [sid for sid in self._stream_versions if stream_channel(sid) not in topics]
        for sid in idle:
            del self._stream_versions[sid]

    async def _refresh_facts(self, stream_id: str) -> None:
        try:
            if await self.authorizer.reload(stream_id) is not None:
                self._reauthorize(stream_id)
        except Exception as exc:
            log_failure(log, "realtime: reloading the facts of stream %s failed", stream_id, exc=exc)

    # -- what arrives on the broker, by envelope (``handlers``; onair/topics.py) ------------------

    def _on_row(self, topic: str, row: RowEvent) -> None:
        stream_id = _stream_of(topic)
        change = RowChange.from_row(row)
        if change is not None:
            self._maybe_revoke(stream_id, change)
            self._cohost_change(stream_id, change)
            for ready in self._in_seq_order(stream_id, change):
                self.hub.change(ready)
                self._observe_lag(ready)

    def _on_stream_state(self, topic: str, state: StreamState) -> None:
        stream_id = _stream_of(topic)
        if state.ended:
            self.authorizer.end(stream_id)  # terminal: whatever the version order
            self._reauthorize(stream_id)
            self._stream_ended(stream_id)
        if state.version is not None:
            if state.version <= self._stream_versions.get(stream_id, -1):
                return  # an older state published late (see services/events.py)
            self._stream_versions[stream_id] = state.version
        self.hub.broadcast(stream_channel(stream_id), "stream_state", state.payload())

    def _on_viewer_count(self, topic: str, count: ViewerCount) -> None:
        self.hub.broadcast(stream_channel(_stream_of(topic)), "viewer_count", count.payload())

    def _on_stream_broadcast(self, topic: str, message: StreamBroadcast) -> None:
        stream_id = _stream_of(topic)
        channel, event, payload = stream_channel(stream_id), message.event, message.payload
        if event == "chat_sanction" and isinstance(payload, dict):
            self._sanction(stream_id, payload)  # first: a banned user gets nothing more
        if event not in EVENTS:
            return  # realtime/visibility.py: default deny
        recipients = None
        if event in SUBJECT_EVENTS:
            subject = payload.get("user_id") if isinstance(payload, dict) else None
            recipients = self._subject_audience(stream_id, channel, subject)
            if not recipients:
                return
        self.hub.broadcast(channel, event, payload, recipients=recipients)

    def _on_channel_broadcast(self, topic: str, message: ChannelBroadcast) -> None:
        if message.origin != self.node_id:  # our own relays were fanned out when sent
            self.hub.broadcast(topic, message.event, message.payload, raw=message.raw)

    def _on_presence_diff(self, topic: str, diff: PresenceDiff) -> None:
        if diff.node != self.node_id and self.shared_presence():
            self.hub.remote_presence(topic, diff.joins, diff.leaves)

    # -- the end of a stream closes its channel (issue 11 §5) -------------------------------------

    def _stream_ended(self, stream_id: str) -> None:
        """The final state is queued for the stream's channel: close the channel once the grace
        has passed, so that state and the last chat rows (published by other processes, held by
        the reorder wait) reach the members first."""
        loop = self.scheduler.loop
        if stream_id in self._ended or loop is None:
            return
        self._ended[stream_id] = loop.time() + self.ended_close_delay
        loop.call_later(self.ended_close_delay, self._close_ended, stream_id)

    def _close_ended(self, stream_id: str) -> None:
        topic = self.hub.topics.get(stream_channel(stream_id))
        if topic is None:
            return
        for member in list(topic.members.values()):
            self.channels.shutdown(member.client, topic.name, STREAM_ENDED, status="ok")
        self.hub.flush()

    def _sweep_ended(self, now: float) -> None:
        """Channels joined after the end (or whose end event was lost and later learnt from the
        facts) close at the next sweep past the grace; the map holds ended streams that still
        have a local channel or are within their grace."""
        for name in self.hub.broker_refs:  # the streams pinned in the authorizer (retained)
            stream_id = parse_stream_topic(name)
            if stream_id is None or stream_id in self._ended or stream_channel(stream_id) not in self.hub.topics:
                continue
            facts = self.authorizer.facts_of(stream_id)
            if facts is not None and facts.ended:
                self._ended[stream_id] = now + self.ended_close_delay
        for stream_id, at in list(self._ended.items()):
            if at > now:
                continue
            if stream_channel(stream_id) in self.hub.topics:
                self._close_ended(stream_id)
            else:
                del self._ended[stream_id]

    def _observe_lag(self, change: RowChange) -> None:
        """Commit to fan-out (broker, queueing, reordering): one parse per change, never per
        delivery. Clocks of different hosts may disagree; a negative lag counts as 0."""
        committed = _epoch(change.commit_timestamp)
        if committed is not None:
            self.hub.stats.delivery_lag.observe(max(0.0, self.wall_clock() - committed))

    def _subject_audience(self, stream_id: str, channel: str, subject: Any) -> set[Client]:
        """The members who may learn about ``subject``: that user, the stream's owners, staff."""
        facts = self.authorizer.facts_of(stream_id)
        owners = {facts.seller_id, *facts.cohosts} if facts is not None else set()
        out: set[Client] = set()
        for member in self.hub.members_of(channel):
            user = getattr(member.principal, "user_id", None)
            if member.reads_broadcast and (is_staff(member.principal) or (user is not None and (
                    user == subject or (user in owners and role_of(member.principal) != "anon")))):
                out.add(member.client)
        return out

    # -- chat rows back in seq order (distributed mode) -------------------------------------------

    def _in_seq_order(self, stream_id: str, change: RowChange) -> list[RowChange]:
        seq = (change.record or {}).get("seq")
        loop = self.scheduler.loop
        if self.chat_order is None or loop is None or change.table != "chat_messages" or type(seq) is not int:
            return [change]
        ready = self.chat_order.push(stream_id, seq, change.type == "INSERT", change, loop.time())
        self._schedule_chat_order()
        return ready

    def _schedule_chat_order(self) -> None:
        loop = self.scheduler.loop
        assert loop is not None and self.chat_order is not None
        deadline = self.chat_order.next_deadline()
        if self._chat_order_timer is not None:
            if deadline is not None and self._chat_order_timer.when() <= deadline:
                return
            self._chat_order_timer.cancel()
            self._chat_order_timer = None
        if deadline is not None:
            self._chat_order_timer = loop.call_at(deadline, self._give_up_chat_gaps)

    def _give_up_chat_gaps(self) -> None:
        loop = self.scheduler.loop
        assert loop is not None and self.chat_order is not None
        self._chat_order_timer = None
        try:
            for ready in self.chat_order.expire(loop.time()):
                self.hub.change(ready)
        except Exception:
            log.exception("realtime: delivering held chat rows failed")
        self._schedule_chat_order()

    # -- sanctions, co-hosts: authorization of open channels -----------------------------------------

    def _sanction(self, stream_id: str, sanction: dict[str, Any]) -> None:
        """A ban, mute or lift takes effect on the user's open channels at once (issue 10 §5)."""
        user, kind = sanction.get("user_id"), sanction.get("kind")
        if not isinstance(user, str) or kind not in ("ban", "mute", None):
            return
        if sanction.get("lifted"):
            self.authorizer.unban(stream_id, user, kind=kind)
        elif kind is not None:
            self.authorizer.ban(stream_id, user, kind=kind, until=_epoch(sanction.get("until")))
        self._reauthorize(stream_id, user)

    def _maybe_revoke(self, stream_id: str, change: RowChange) -> None:
        if change.table != "chat_sanctions" or change.type == "DELETE" or not change.record:
            return
        record = change.record
        user, kind = record.get("user_id"), record.get("kind")
        if kind in ("ban", "mute") and not record.get("lifted_at") and isinstance(user, str):
            self.authorizer.ban(stream_id, user, kind=kind, until=_epoch(record.get("until")))
            self._reauthorize(stream_id, user)

    def _cohost_change(self, stream_id: str, change: RowChange) -> None:
        if change.table != "stream_cohosts":
            return
        row = change.record if change.type == "INSERT" else change.old_record
        user = (row or {}).get("user_id")
        if isinstance(user, str) and change.type in ("INSERT", "DELETE"):
            self.authorizer.cohost(stream_id, user, added=change.type == "INSERT")
            self._reauthorize(stream_id, user)

    def _reauthorize(self, stream_id: str, user: str | None = None) -> None:
        """Re-check every open channel (of ``user``, or everyone's) that reads stream
        ``stream_id``: its own channel or a postgres_changes binding scoped to it. The hub indexes
        members by the streams they read (``routing.stream_interests``), so this visits the
        stream's readers only, never every connected client."""
        if self.authorizer.facts_of(stream_id) is None:
            return  # nothing known yet: the reload under way decides (never close on ignorance)
        for member in self.hub.interested(stream_id):
            if user is not None and getattr(member.principal, "user_id", None) != user:
                continue
            self.channels.reauthorize(member.client, member.topic)
        self.hub.flush()


def _stream_of(topic: str) -> str:
    """The stream of a stream topic (decode() gives stream envelopes only for those)."""
    stream_id = parse_stream_topic(topic)
    assert stream_id is not None
    return stream_id


def _epoch(value: Any) -> float | None:
    """An event's ``until`` (ISO text after the broker's JSON) as epoch seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return None
