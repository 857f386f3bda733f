"""The realtime service of one process: hub + dispatcher + broker wiring + periodic sweep.

It is the broker consumer for realtime: committed events of stream X arrive on broker topic
``stream:{X}`` and become postgres_changes messages and server broadcasts on ``realtime:stream:{X}``;
channel broadcasts from other nodes arrive on ``realtime:{sub-topic}`` and are fanned out locally.
Broker subscriptions follow local demand (the hub counts references); unsubscribing waits a moment
so a topic that empties and refills does not churn. A join is confirmed only once its broker
topics are subscribed (one subscription per topic, shared by concurrent joins); when that fails,
or while the broker link is down, the join is refused and the client retries. When an
established link drops and comes back (Redis), every local channel is told in-band with a
``system`` message (``status: error``, then ``ok``) so clients resync at once, and chat rows held
for a seq gap are released at the loss instead of waiting out a gap that cannot fill any more.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from onair.broker.base import Broker, BrokerUnavailable
from onair.logs import log_failure
from onair.realtime.changes import RowChange
from onair.realtime.client import Client
from onair.realtime.client_ip import client_ip, trusted_networks
from onair.realtime.dispatcher import AsyncVerify, Dispatcher, TokenInfo, TokenRejected, Verify
from onair.realtime.hub import Hub
from onair.realtime.limits import RealtimeLimits
from onair.realtime.ordering import ChatOrder
from onair.realtime.policies import AllowAll, Authorizer, is_staff, role_of
from onair.realtime.protocol.connection import ConnectionProtocol, JoinRequested, TokenRefreshed
from onair.realtime.protocol.errors import Disconnect
from onair.realtime.protocol.serializer import Serializer
from onair.realtime.routing import broker_topics, stream_interests
from onair.realtime.visibility import EVENTS, SUBJECT_EVENTS
from onair.tally import bump
from onair.topics import (
    ChannelBroadcast,
    Envelope,
    PresenceDiff,
    RowEvent,
    StreamBroadcast,
    StreamState,
    ViewerCount,
    decode,
    encode,
    parse_stream_topic,
    stream_channel,
)

log = logging.getLogger("onair.realtime")
STATE_KEY = "onair.realtime"
PATH = "/realtime/v1/websocket"
# ``system`` messages when a node's broker link drops and comes back (web client: channel.js)
LIVE_DELIVERY_LOST = "Live delivery interrupted: messages may be missed until it is restored"
LIVE_DELIVERY_RESTORED = "Live delivery restored: resync what was missed"
BROKER_UNAVAILABLE = "Live delivery is unavailable right now, please retry"


class RealtimeService:
    def __init__(self, verify: Verify, broker: Broker | None = None, *, limits: RealtimeLimits = RealtimeLimits(),
                 authorizer: Authorizer | None = None, distributed: bool = False, sweep_interval: float = 1.0,
                 unsubscribe_delay: float = 5.0, wall_clock: Callable[[], float] = time.time,
                 presence_store: Callable[[], Any] | None = None, presence_heartbeat: float = 5.0,
                 chat_reorder_wait: float = 0.5, verify_async: AsyncVerify | None = None,
                 trusted_proxies: Iterable[str] = (), policy_refresh_interval: float = 30.0,
                 ended_close_delay: float = 2.0, join_subscribe_timeout: float = 5.0) -> None:
        self.node_id = uuid.uuid4().hex[:8]
        self.broker = broker
        self.distributed = distributed
        self.limits = limits
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.policy_refresh_interval = policy_refresh_interval
        self.sweep_interval = sweep_interval
        self.unsubscribe_delay = unsubscribe_delay
        self.wall_clock = wall_clock
        self._proxies = trusted_networks(trusted_proxies)
        self.loop: asyncio.AbstractEventLoop | None = None
        shared = distributed and presence_store is not None
        self.hub = Hub(self._call_soon, node_id=self.node_id, broker_topics=broker_topics(distributed),
                       on_broker_retain=self._retain, on_broker_release=self._release,
                       on_presence=self._presence_changed if shared else None,
                       interests=stream_interests)
        self.dispatcher = Dispatcher(self.hub, verify, authorizer=self.authorizer, limits=limits,
                                     relay=self._relay if distributed else None,
                                     presence_seed=self._seed_presence if shared else None,
                                     verify_async=verify_async,
                                     broker_ready=self.broker_ready if broker is not None else None)
        self._presence_factory = presence_store if shared else None
        self._presence_heartbeat = presence_heartbeat
        self.presence: Any = None  # the shared PresenceStore while running
        self._stack: Any = None
        self.verify = verify
        self.verify_async = verify_async
        self._sweeper: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[Callable[[], Any]] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_versions: dict[str, int] = {}
        self.ended_close_delay = ended_close_delay
        self._ended: dict[str, float] = {}  # ended stream -> when its channel closes (loop time)
        # Only several processes can publish one stream's chat rows out of seq order.
        self._chat_order: ChatOrder[RowChange] | None = ChatOrder(chat_reorder_wait) if distributed else None
        self._chat_order_timer: asyncio.TimerHandle | None = None
        # broker topic -> its subscription, done or in flight (concurrent joins share it)
        self._subscriptions: dict[str, asyncio.Future[None]] = {}
        self._unsubscribing: dict[str, asyncio.Task[None]] = {}
        self.join_subscribe_timeout = join_subscribe_timeout
        self.link_up = True  # False between a broker's on_link_down and on_link_up
        self._interrupted: set[str] = set()  # channels told that live delivery was lost
        self.relay_failures = 0  # relays and shared-presence updates the broker refused
        # what each broker envelope does here (a kind this version does not know is skipped)
        self._handlers: dict[type[Envelope], Callable[[str, Any], None]] = {
            RowEvent: self._on_row, StreamState: self._on_stream_state,
            ViewerCount: self._on_viewer_count, StreamBroadcast: self._on_stream_broadcast,
            ChannelBroadcast: self._on_channel_broadcast, PresenceDiff: self._on_presence_diff,
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        self._publisher = self.loop.create_task(self._publish_loop())
        if self._presence_factory is not None:
            from contextlib import AsyncExitStack

            from onair.broker.presence_base import run_heartbeat

            self._stack = AsyncExitStack()
            self.presence = await self._stack.enter_async_context(self._presence_factory())
            self._spawn(run_heartbeat(self.presence, self.node_id, self._presence_heartbeat, self._retrack))
        self._schedule_sweep()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for client in list(self.hub.clients):
            self.hub.disconnect(client, _GOING_AWAY)
        if self._publisher is not None:
            self._publisher.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._stack is not None:
            await self._stack.aclose()

    def monotonic(self) -> float:
        """The loop's clock (the sweep and the byte budgets run on it)."""
        return self.loop.time() if self.loop is not None else time.monotonic()

    def _call_soon(self, callback: Callable[[], None]) -> None:
        assert self.loop is not None
        self.loop.call_soon(callback)

    def _schedule_sweep(self) -> None:
        assert self.loop is not None
        self._sweeper = self.loop.call_later(self.sweep_interval, self._sweep)

    def _sweep(self) -> None:
        try:
            assert self.loop is not None
            self.dispatcher.sweep(self.loop.time(), self.wall_clock())
            self._forget_idle_streams()
            self._sweep_ended(self.loop.time())
            for stream_id in self.authorizer.due(self.policy_refresh_interval, 100):
                self._spawn(self._refresh_facts(stream_id))
        except Exception:
            log.exception("realtime: sweep failed")
        self._schedule_sweep()

    def _forget_idle_streams(self) -> None:
        """Stream versions are needed only while a local channel of the stream may get a late,
        older state: drop the rest, so the map follows open channels, not every stream ever seen."""
        topics = self.hub.topics
        idle = [sid for sid in self._stream_versions if stream_channel(sid) not in topics]
        for sid in idle:
            del self._stream_versions[sid]

    def _spawn(self, coro: Any) -> None:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connections (called by the WebSocket shell) ----------------------------------------------

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        return client_ip(peer, forwarded_for, self._proxies)

    def authenticate(self, apikey: str | None, ip: str | None = None) -> TokenInfo:
        """Connect-time check of the apikey and the connection caps; raises TokenRejected (HTTP
        401 or 429 at the upgrade)."""
        from onair.realtime.dispatcher import TokenRejected

        if ip is not None and self.hub.connections_from(ip) >= self.limits.max_connections_per_ip:
            bump(self.hub.stats.limit_hits, "connections_per_ip")
            raise TokenRejected("Too many connected users", "ConnectionRateLimitReached")
        if not apikey:
            raise TokenRejected("API key is missing", "")
        info = self.verify(apikey)
        if info.exp is not None and info.exp <= self.wall_clock():
            raise TokenRejected("Token has expired", "")
        user = getattr(info.principal, "user_id", None)
        if user is not None and self.hub.connections_of(user) >= self.limits.max_connections_per_user:
            bump(self.hub.stats.limit_hits, "connections_per_user")
            raise TokenRejected("Too many connected users", "ConnectionRateLimitReached")
        return info

    def attach(self, transport: Any, serializer: Serializer, apikey: TokenInfo,
               closer: Callable[[int, str], None], ip: str | None = None) -> Client:
        assert self.loop is not None
        protocol = ConnectionProtocol(serializer, self.loop.time(), self.limits.filters,
                                      self.limits.max_topic_bytes,
                                      self.limits.max_join_bytes_per_connection)
        client = Client(protocol, transport, apikey.principal, self.limits.max_pending_bytes, self.hub.overflow,
                        closer, ip)
        client.apikey = apikey
        self.hub.connect(client)
        return client

    def detach(self, client: Client) -> None:
        self.hub.disconnect(client)

    def receive(self, client: Client, data: bytes, binary: bool) -> Any:
        """One complete frame. Returns a coroutine when the request needs I/O (join, token
        refresh): the shell must not feed this client more frames until it has finished."""
        assert self.loop is not None
        now = self.loop.time()
        if client.closed or not self.dispatcher.admit(client, now):
            return None
        req = None
        try:
            req = client.protocol.receive(data, binary, now)
            if isinstance(req, JoinRequested):
                return self.dispatcher.join(client, req, client.apikey, self.wall_clock())
            if isinstance(req, TokenRefreshed):
                return self.dispatcher.refresh(client, req, self.wall_clock())
            if req is not None:
                self.dispatcher.handle(client, req, now)
        except Exception:
            # never shown to the client: the channel gets a bare phx_error and rejoins
            log.exception("realtime: request failed")
            topic = getattr(req, "topic", None)
            if topic is not None:
                client.protocol.crash(topic)
                self.hub.leave(client, topic)
        self.hub.send_protocol_output(client)
        return None

    # -- broker -------------------------------------------------------------------------------------

    def _retain(self, topic: str) -> None:
        stream = parse_stream_topic(topic)
        if stream is not None:
            self.authorizer.pin(stream)  # fed by this topic's events from now on
        if self.broker is not None and self.loop is not None and topic not in self._subscriptions:
            self._spawn(self._subscribe_logged(topic))  # a rebind's topics: nobody waits for them

    async def broker_ready(self, topics: tuple[str, ...]) -> None:
        """Return once every topic is subscribed (already, by a concurrent join, or now); raise
        TokenRejected when the broker cannot deliver (link down, subscribe failed or too slow)."""
        if self.broker is None or not topics:
            return
        if not self.link_up:
            raise TokenRejected(BROKER_UNAVAILABLE, "BrokerUnavailable")
        if all(self._held(topic) for topic in topics):
            return  # the usual case: another member holds them already
        try:
            async with asyncio.timeout(self.join_subscribe_timeout):
                for topic in topics:
                    await self._subscribed(topic)
        except Exception as exc:  # whatever the broker raised, the join is refused
            log.warning("realtime: broker subscribe for a join failed: %s", exc or type(exc).__name__)
            raise TokenRejected(BROKER_UNAVAILABLE, "BrokerUnavailable") from exc

    def _held(self, topic: str) -> bool:
        held = self._subscriptions.get(topic)
        return held is not None and held.done() and not held.cancelled() and held.exception() is None

    async def _subscribed(self, topic: str) -> None:
        """Subscribe ``topic`` once: a done subscription returns at once (without suspending:
        the in-memory broker's joins stay instant), one in flight is awaited, a failed one is
        forgotten so the next join tries again."""
        assert self.broker is not None and self.loop is not None
        held = self._subscriptions.get(topic)
        if held is not None:
            if not held.done():
                await asyncio.shield(held)
                return
            if not held.cancelled() and held.exception() is None:
                return
        leaving = self._unsubscribing.get(topic)
        if leaving is not None:
            await asyncio.shield(leaving)  # an UNSUBSCRIBE under way must not undo this subscribe
            held = self._subscriptions.get(topic)
            if held is not None:  # another join subscribed meanwhile
                await asyncio.shield(held)
                return
        future: asyncio.Future[None] = self.loop.create_future()
        self._subscriptions[topic] = future
        try:
            await self.broker.subscribe(topic)
        except BaseException as exc:
            if self._subscriptions.get(topic) is future:
                del self._subscriptions[topic]
            future.set_exception(exc if isinstance(exc, Exception) else BrokerUnavailable("subscribe cancelled"))
            future.exception()  # retrieved: the waiters (if any) get it, nobody else must log it
            raise
        future.set_result(None)
        stream = parse_stream_topic(topic)
        if stream is not None:
            # Events published between the join's facts and this subscription were missed:
            # read the facts again now that every later event reaches us.
            self._spawn(self._refresh_facts(stream))
        if topic not in self.hub.broker_refs:
            # held for a join that has not happened (yet): released like any other if it never does
            self.loop.call_later(self.unsubscribe_delay, self._maybe_unsubscribe, topic)

    async def _subscribe_logged(self, topic: str) -> None:
        try:
            await self._subscribed(topic)
        except Exception as exc:
            log_failure(log, "realtime: broker subscribe %s failed", topic, exc=exc)

    async def _refresh_facts(self, stream_id: str) -> None:
        try:
            if await self.authorizer.reload(stream_id) is not None:
                self._reauthorize(stream_id)
        except Exception as exc:
            log_failure(log, "realtime: reloading the facts of stream %s failed", stream_id, exc=exc)

    def _release(self, topic: str) -> None:
        if (stream := parse_stream_topic(topic)) is not None:
            self.authorizer.unpin(stream)  # the last local member left
        if self.broker is not None and self.loop is not None:
            self.loop.call_later(self.unsubscribe_delay, self._maybe_unsubscribe, topic)

    def _maybe_unsubscribe(self, topic: str) -> None:
        if topic in self.hub.broker_refs or self.broker is None or self.loop is None:
            return
        held = self._subscriptions.get(topic)
        if held is not None and not held.done():
            return  # its completion checks again
        self._subscriptions.pop(topic, None)
        if topic not in self._unsubscribing:
            task = self.loop.create_task(self._unsubscribe(topic))
            self._unsubscribing[topic] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._chat_order is not None and (stream := parse_stream_topic(topic)) is not None:
            self._chat_order.forget(stream)

    async def _unsubscribe(self, topic: str) -> None:
        assert self.broker is not None
        try:
            await self.broker.unsubscribe(topic)
        except Exception:
            log.warning("realtime: broker unsubscribe %s failed", topic, exc_info=True)
        finally:
            self._unsubscribing.pop(topic, None)

    # -- broker link (LinkHandler) ----------------------------------------------------------------

    def on_link_down(self, reason: str) -> None:
        """The broker link broke: events are being missed. Release held chat rows now (their
        gaps cannot fill) and tell every local channel, so clients resync instead of waiting."""
        self.link_up = False
        log.warning("realtime: broker link lost (%s); telling %d channel(s)", reason, len(self.hub.topics))
        self._release_chat_order()
        for topic in list(self.hub.topics):
            self.hub.notify(topic, "error", LIVE_DELIVERY_LOST)
            self._interrupted.add(topic)

    def on_link_up(self) -> None:
        """The link is back with every topic subscribed again: channels told of the loss resync."""
        self.link_up = True
        self._release_chat_order()
        interrupted, self._interrupted = self._interrupted, set()
        for topic in interrupted:
            self.hub.notify(topic, "ok", LIVE_DELIVERY_RESTORED)
        if interrupted:
            log.info("realtime: broker link restored; told %d channel(s) to resync", len(interrupted))

    def _release_chat_order(self) -> None:
        if self._chat_order is None:
            return
        if self._chat_order_timer is not None:
            self._chat_order_timer.cancel()
            self._chat_order_timer = None
        try:
            for ready in self._chat_order.reset():
                self.hub.change(ready)
        except Exception:
            log.exception("realtime: delivering held chat rows failed")

    def _relay(self, topic: str, event: str, payload: Any, raw: bytes | None, sender: Client | None) -> None:
        if self._outbox is None or self.broker is None:
            return
        data, broker = encode(ChannelBroadcast(self.node_id, event, payload, raw)), self.broker
        self._outbox.put_nowait(lambda: broker.publish(topic, data))

    async def _publish_loop(self) -> None:
        """Relays and shared-presence updates, one at a time so they keep their order."""
        assert self._outbox is not None
        while True:
            job = await self._outbox.get()
            try:
                await job()
            except Exception as exc:
                self.relay_failures += 1
                log_failure(log, "realtime: relay to the broker failed", exc=exc)

    # -- shared presence (distributed mode) -----------------------------------------------------

    def _presence_changed(self, member: Any, entry: Any) -> None:
        store, ref = self.presence, f"{member.client.id}.{member.uid}"
        if store is None or self._outbox is None:
            return
        if entry is None:
            self._outbox.put_nowait(lambda: store.untrack(member.topic, self.node_id, ref))
        else:
            key, meta, phx_ref = entry.key, entry.meta, entry.ref
            self._outbox.put_nowait(lambda: store.track(member.topic, self.node_id, ref, key, meta, phx_ref))

    async def _seed_presence(self, topic: str) -> None:
        if self.presence is not None and self.hub.needs_remote_presence(topic):
            state = await self.presence.list(topic)
            self.hub.seed_remote_presence(topic, state)

    async def _retrack(self) -> None:
        """Our heartbeat lapsed and the store dropped our entries: track them again."""
        for member in self.hub.local_presence():
            self._presence_changed(member, member.presence)

    def broadcast(self, topic: str, event: str, payload: Any) -> None:
        """A server-side broadcast (REST endpoint): local fan-out plus relay to other nodes."""
        self.hub.broadcast(topic, event, payload)
        if self.distributed:
            self._relay(topic, event, payload, None, None)

    def on_message(self, topic: str, data: bytes) -> None:
        """Broker handler (via the app's fan-in). Never raises."""
        try:
            envelope = decode(topic, data)
            handler = self._handlers.get(type(envelope)) if envelope is not None else None
            if handler is not None:
                handler(topic, envelope)
        except Exception:
            log.exception("realtime: bad broker message on %s", topic)

    # -- what arrives on the broker, by envelope (``_handlers``; onair/topics.py) -----------------

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
        if diff.node != self.node_id and self.presence is not None:
            self.hub.remote_presence(topic, diff.joins, diff.leaves)

    # -- the end of a stream closes its channel (issue 11 §5) -------------------------------------

    def _stream_ended(self, stream_id: str) -> None:
        """The final state is queued for the stream's channel: close the channel once the grace
        has passed, so that state and the last chat rows (published by other processes, held by
        the reorder wait) reach the members first."""
        if stream_id in self._ended or self.loop is None:
            return
        self._ended[stream_id] = self.loop.time() + self.ended_close_delay
        self.loop.call_later(self.ended_close_delay, self._close_ended, stream_id)

    def _close_ended(self, stream_id: str) -> None:
        topic = self.hub.topics.get(stream_channel(stream_id))
        if topic is None:
            return
        for member in list(topic.members.values()):
            self.dispatcher.shutdown(member.client, topic.name, STREAM_ENDED, status="ok")
        self.hub.flush()

    def _sweep_ended(self, now: float) -> None:
        """Channels joined after the end (or whose end event was lost and later learnt from the
        facts) close at the next sweep past the grace; the map holds ended streams that still
        have a local channel or are within their grace."""
        for name in self.hub.broker_refs:  # the streams pinned in the authorizer (_retain)
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

    def _in_seq_order(self, stream_id: str, change: RowChange) -> list[RowChange]:
        seq = (change.record or {}).get("seq")
        if (self._chat_order is None or self.loop is None or change.table != "chat_messages"
                or type(seq) is not int):
            return [change]
        ready = self._chat_order.push(stream_id, seq, change.type == "INSERT", change, self.loop.time())
        self._schedule_chat_order()
        return ready

    def _schedule_chat_order(self) -> None:
        assert self.loop is not None and self._chat_order is not None
        deadline = self._chat_order.next_deadline()
        if self._chat_order_timer is not None:
            if deadline is not None and self._chat_order_timer.when() <= deadline:
                return
            self._chat_order_timer.cancel()
            self._chat_order_timer = None
        if deadline is not None:
            self._chat_order_timer = self.loop.call_at(deadline, self._give_up_chat_gaps)

    def _give_up_chat_gaps(self) -> None:
        assert self.loop is not None and self._chat_order is not None
        self._chat_order_timer = None
        try:
            for ready in self._chat_order.expire(self.loop.time()):
                self.hub.change(ready)
        except Exception:
            log.exception("realtime: delivering held chat rows failed")
        self._schedule_chat_order()

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
            self.dispatcher.reauthorize(member.client, member.topic)
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


_GOING_AWAY = Disconnect(1001, "server shutting down")
STREAM_ENDED = "The stream has ended"
