"""The node: one process's realtime side between the broker and the hub.

It owns the hub and the broker link. Broker subscriptions follow local demand (the hub counts
references); unsubscribing waits a moment so a topic that empties and refills does not churn. A
join is confirmed only once its broker topics are subscribed (one subscription per topic, shared
by concurrent joins); when that fails, or while the broker link is down, the join is refused and
the client retries. When an established link drops and comes back (Redis), every local channel is
told in-band with a ``system`` message (``status: error``, then ``ok``) so clients resync at once.

What arrives is decoded here and handed, by envelope type, to the handler the node serves (the
stream events, ``stream_events.py``), which also hears when a stream's topic is retained,
subscribed, released and when the link changes. Relays to other nodes and shared-presence updates
leave through one publish queue, so they keep their order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from onair.broker.base import Broker, BrokerUnavailable
from onair.logs import log_failure
from onair.realtime.client import Client
from onair.realtime.dispatcher import TokenRejected
from onair.realtime.hub import Hub
from onair.realtime.protocol.errors import Disconnect
from onair.realtime.routing import broker_topics, stream_interests
from onair.topics import ChannelBroadcast, Envelope, decode, encode, parse_stream_topic

log = logging.getLogger("onair.realtime")
# ``system`` messages when a node's broker link drops and comes back (web client: channel.js)
LIVE_DELIVERY_LOST = "Live delivery interrupted: messages may be missed until it is restored"
LIVE_DELIVERY_RESTORED = "Live delivery restored: resync what was missed"
BROKER_UNAVAILABLE = "Live delivery is unavailable right now, please retry"
_GOING_AWAY = Disconnect(1001, "server shutting down")


class NodeHandler(Protocol):
    """What the node hands on about streams (``stream_events.StreamEvents``)."""

    @property
    def handlers(self) -> Mapping[type[Envelope], Callable[[str, Any], None]]:
        """What each broker envelope does (a kind missing here is skipped)."""

    def retained(self, stream_id: str) -> None:
        """A local member needs the stream's broker topic."""

    def subscribed(self, stream_id: str) -> None:
        """The stream's broker topic is subscribed: every later event reaches us."""

    def released(self, stream_id: str) -> None:
        """The last local member of the stream's broker topic left."""

    def unsubscribed(self, stream_id: str) -> None:
        """The stream's broker topic is being unsubscribed."""

    def link_changed(self) -> None:
        """The broker link dropped or came back: what waits for missed events waits no longer."""


Sweeper = Callable[[float, float], None]  # (loop time, wall clock)


class Node:
    def __init__(self, node_id: str, broker: Broker | None, *, distributed: bool = False,
                 sweep_interval: float = 1.0, unsubscribe_delay: float = 5.0,
                 join_subscribe_timeout: float = 5.0, wall_clock: Callable[[], float] = time.time,
                 on_presence: Callable[[Any, Any], None] | None = None) -> None:
        self.node_id = node_id
        self.broker = broker
        self.distributed = distributed
        self.sweep_interval = sweep_interval
        self.unsubscribe_delay = unsubscribe_delay
        self.join_subscribe_timeout = join_subscribe_timeout
        self.wall_clock = wall_clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.hub = Hub(self._call_soon, node_id=node_id, broker_topics=broker_topics(distributed),
                       on_broker_retain=self._retain, on_broker_release=self._release,
                       on_presence=on_presence, interests=stream_interests)
        self._handler: NodeHandler | None = None
        self._sweepers: Sequence[Sweeper] = ()
        self._sweeper: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[Callable[[], Awaitable[Any]]] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # broker topic -> its subscription, done or in flight (concurrent joins share it)
        self._subscriptions: dict[str, asyncio.Future[None]] = {}
        self._unsubscribing: dict[str, asyncio.Task[None]] = {}
        self.link_up = True  # False between a broker's on_link_down and on_link_up
        self._interrupted: set[str] = set()  # channels told that live delivery was lost
        self.relay_failures = 0  # relays and shared-presence updates the broker refused

    def serve(self, handler: NodeHandler, sweepers: Sequence[Sweeper]) -> None:
        """Name who handles broker traffic and what runs at each sweep (once, before any message:
        they are built on this node's hub, so they cannot be passed to the constructor)."""
        self._handler = handler
        self._sweepers = sweepers

    @property
    def handler(self) -> NodeHandler:
        assert self._handler is not None, "Node.serve() was not called"
        return self._handler

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        self._publisher = self.loop.create_task(self._publish_loop())
        self._schedule_sweep()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for client in list(self.hub.clients):
            self.hub.disconnect(client, _GOING_AWAY)
        if self._publisher is not None:
            self._publisher.cancel()
        for task in list(self._tasks):
            task.cancel()

    def monotonic(self) -> float:
        """The loop's clock (the sweep and the byte budgets run on it)."""
        return self.loop.time() if self.loop is not None else time.monotonic()

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` as a task of this node (cancelled at stop)."""
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        assert self.loop is not None
        self.loop.call_soon(callback)

    def _schedule_sweep(self) -> None:
        assert self.loop is not None
        self._sweeper = self.loop.call_later(self.sweep_interval, self._sweep)

    def _sweep(self) -> None:
        try:
            assert self.loop is not None
            for sweep in self._sweepers:
                sweep(self.loop.time(), self.wall_clock())
        except Exception:
            log.exception("realtime: sweep failed")
        self._schedule_sweep()

    # -- broker subscriptions (the hub's reference counts) ----------------------------------------

    def _retain(self, topic: str) -> None:
        stream = parse_stream_topic(topic)
        if stream is not None:
            self.handler.retained(stream)
        if self.broker is not None and self.loop is not None and topic not in self._subscriptions:
            self.spawn(self._subscribe_logged(topic))  # a rebind's topics: nobody waits for them

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
            self.handler.subscribed(stream)
        if topic not in self.hub.broker_refs:
            # held for a join that has not happened (yet): released like any other if it never does
            self.loop.call_later(self.unsubscribe_delay, self._maybe_unsubscribe, topic)

    async def _subscribe_logged(self, topic: str) -> None:
        try:
            await self._subscribed(topic)
        except Exception as exc:
            log_failure(log, "realtime: broker subscribe %s failed", topic, exc=exc)

    def _release(self, topic: str) -> None:
        if (stream := parse_stream_topic(topic)) is not None:
            self.handler.released(stream)
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
        if (stream := parse_stream_topic(topic)) is not None:
            self.handler.unsubscribed(stream)

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
        self.handler.link_changed()
        for topic in list(self.hub.topics):
            self.hub.notify(topic, "error", LIVE_DELIVERY_LOST)
            self._interrupted.add(topic)

    def on_link_up(self) -> None:
        """The link is back with every topic subscribed again: channels told of the loss resync."""
        self.link_up = True
        self.handler.link_changed()
        interrupted, self._interrupted = self._interrupted, set()
        for topic in interrupted:
            self.hub.notify(topic, "ok", LIVE_DELIVERY_RESTORED)
        if interrupted:
            log.info("realtime: broker link restored; told %d channel(s) to resync", len(interrupted))

    # -- what leaves for the broker, and what arrives -----------------------------------------------

    def enqueue(self, job: Callable[[], Awaitable[Any]]) -> bool:
        """Queue a broker call behind the earlier ones; False before start (nothing queued)."""
        if self._outbox is None:
            return False
        self._outbox.put_nowait(job)
        return True

    def relay(self, topic: str, event: str, payload: Any, raw: bytes | None, sender: Client | None) -> None:
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

    def on_message(self, topic: str, data: bytes) -> None:
        """Broker handler (via the app's fan-in). Never raises."""
        try:
            envelope = decode(topic, data)
            handler = self.handler.handlers.get(type(envelope)) if envelope is not None else None
            if handler is not None:
                handler(topic, envelope)
        except Exception:
            log.exception("realtime: bad broker message on %s", topic)
