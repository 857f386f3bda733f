"""Redis pub/sub broker: lets any number of onair processes share topics.

Two connections per process, both made from the URL by redis-py (so ``rediss://``, ``unix://``,
passwords and ``/db`` work as redis-py documents them):

* the **publish link** carries PUBLISH (and PING). Publishes are auto-pipelined: calls made while
  a round trip is in flight are written together in the next one, in call order, over the one
  connection — so one process's messages on one topic keep their order, and many concurrent
  publishers cost one round trip per batch rather than one each.
* the **subscribe link** is in pub/sub mode. The process is subscribed only to topics it was asked
  for (the hub asks when a topic gets its first local member). Messages are handed to the handler
  inline by the single reader, in the order Redis sends them; no task per message, and the
  payload is never decoded.

``subscribe``/``unsubscribe`` are idempotent and keep no reference count (the hub counts).
``subscribe`` returns once Redis confirmed it, so a message published after it returns is
delivered. After ``unsubscribe`` returns nothing more is delivered for that topic, even if Redis
still has some in flight. If Redis goes away, ``ping``/``publish``/``subscribe`` raise
``BrokerUnavailable`` while a supervisor reconnects with jittered exponential backoff, then
re-subscribes every topic the process still wants. Messages published while the link was down are
lost (pub/sub is at-most-once); the ordering contract holds within each connected period. A
handler with ``on_link_down``/``on_link_up`` (base.LinkHandler) hears of both moments: the loss as
soon as it is noticed (EOF or an error on a link at once, a silent server after one
``health_interval`` without PONG), the recovery once every wanted topic is subscribed again.

Topics become Redis channels ``key_prefix + topic`` so several deployments can share one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import RedisError

from onair.broker.base import Broker, BrokerHandler, BrokerUnavailable

log = logging.getLogger(__name__)

_SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE when re-subscribing after a reconnect
# Commands written as RESP by hand: redis-py's generic packer costs more than the rest of publish.
_PUBLISH = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
_PING = b"*1\r\n$4\r\nPING\r\n"


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "",
        connect_timeout: float = 2.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        health_interval: float = 5.0,
    ) -> None:
        # We only use the pool to build connections from the URL; it never hands them out.
        self._pool: ConnectionPool = ConnectionPool.from_url(
            url, socket_connect_timeout=connect_timeout, socket_keepalive=True
        )
        self._prefix = key_prefix.encode()
        self._connect_timeout = connect_timeout
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._health_interval = health_interval

        self._handler: BrokerHandler | None = None
        self._closed = False
        self._available = False
        self._last_error = "not connected yet"
        self._up = asyncio.Event()  # set while both links are usable
        self.links_failed = 0  # links lost or connects that failed (introspection for tests)
        self._down_since: float | None = None  # monotonic time the link went down (for the log)
        self.connects = 0  # links established (the first and every reconnect; for /metrics)
        self._lost = asyncio.Event()  # set by whoever notices the link broke

        # Subscriptions, channel bytes -> topic: what this process wants (re-subscribed after a
        # reconnect), and what Redis confirmed since it was last asked for (delivered). A message
        # Redis sent before confirming the latest SUBSCRIBE predates it and is dropped.
        self._wanted: dict[bytes, str] = {}
        self._live: dict[bytes, str] = {}
        self._pending: dict[bytes, asyncio.Future[None]] = {}  # latest unconfirmed SUBSCRIBE
        # One entry per channel named in each (UN)SUBSCRIBE we sent, in send order; Redis answers
        # every channel argument once, in the same order.
        self._acks: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()
        self._command_lock = asyncio.Lock()  # keeps _acks in the order bytes hit the socket
        self._sub: AbstractConnection | None = None
        self._pong = False

        # Publish link: items wait in _queue until the writer takes the whole queue.
        self._pub: AbstractConnection | None = None
        # (RESP command, future for its reply, or None when a later one of the same call waits)
        self._queue: list[tuple[bytes, asyncio.Future[Any] | None]] = []
        self._queued = asyncio.Event()

        self._tasks: list[asyncio.Task[None]] = []

    # --- Broker interface ---------------------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        """Start the links; waits up to ``connect_timeout`` for the first connection.

        If Redis is not reachable yet the process still starts: the supervisor keeps trying and
        ``ping`` reports ``BrokerUnavailable`` until it succeeds.
        """
        if self._tasks:
            raise RuntimeError("RedisBroker.start() called twice")
        self._handler = handler
        self._tasks = [
            asyncio.create_task(self._supervise(), name="redis-broker-supervisor"),
            asyncio.create_task(self._write_loop(), name="redis-broker-writer"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._connect_timeout):
                await self._up.wait()

    async def subscribe(self, topic: str) -> None:
        channel = self._prefix + topic.encode()
        if channel in self._wanted:
            pending = self._pending.get(channel)
            if pending is not None:
                await asyncio.shield(pending)
            return
        if not self._available:
            raise BrokerUnavailable(f"redis broker unavailable: {self._last_error}")
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wanted[channel] = topic
        self._pending[channel] = ack
        try:
            async with self._command_lock:
                sub = self._sub
                if not self._available or sub is None or ack.done():
                    raise BrokerUnavailable(f"redis broker unavailable: {self._last_error}")
                self._acks.append((channel, ack))
                await _send(sub, b"SUBSCRIBE", channel)
            await asyncio.shield(ack)
        except BaseException as exc:
            if ack.done() and not ack.cancelled():
                ack.exception()  # retrieved: we report it (or our own error) to the caller
            if self._pending.get(channel) is ack:
                # If SUBSCRIBE already went out, Redis may stay subscribed until the next reconnect;
                # the reader drops what arrives because the channel is no longer wanted.
                del self._pending[channel]
                self._wanted.pop(channel, None)
            if isinstance(exc, (RedisError, OSError)):
                self._link_broken(exc)
                raise BrokerUnavailable(f"redis broker unavailable: {exc}") from exc
            raise

    async def unsubscribe(self, topic: str) -> None:
        channel = self._prefix + topic.encode()
        if self._wanted.pop(channel, None) is None:
            return
        self._pending.pop(channel, None)
        self._live.pop(channel, None)
        if not self._available:
            return  # nothing to undo: the reconnect re-subscribes only what is still wanted
        async with self._command_lock:
            sub = self._sub
            if not self._available or sub is None:
                return
            self._acks.append((channel, None))
            try:
                await _send(sub, b"UNSUBSCRIBE", channel)
            except (RedisError, OSError) as exc:
                self._link_broken(exc)

    async def publish(self, topic: str, data: bytes) -> None:
        """Returns once Redis took the message. ``BrokerUnavailable`` means it may or may not
        have gone out (the link broke before Redis answered)."""
        if not self._available:
            raise BrokerUnavailable(f"redis broker unavailable: {self._last_error}")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        channel = self._prefix + topic.encode()
        command = _PUBLISH % (len(channel), channel, len(data), data)
        self._queue.append((command, done))
        self._queued.set()
        await done

    async def publish_many(self, topic: str, items: Sequence[bytes]) -> None:
        """One queue entry per message but one future for all: Redis answers in order, so the
        last answer means every message before it was taken too."""
        if not items:
            return
        if not self._available:
            raise BrokerUnavailable(f"redis broker unavailable: {self._last_error}")
        channel = self._prefix + topic.encode()
        head = len(channel)
        self._queue.extend((_PUBLISH % (head, channel, len(data), data), None)
                           for data in items[:-1])
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((_PUBLISH % (head, channel, len(items[-1]), items[-1]), done))
        self._queued.set()
        await done

    async def ping(self) -> None:
        if self._closed:
            raise BrokerUnavailable("redis broker is closed")
        if not self._available:
            raise BrokerUnavailable(f"redis broker unavailable: {self._last_error}")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((_PING, done))
        self._queued.set()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await done
        except TimeoutError:
            raise BrokerUnavailable("redis did not answer PING in time") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._last_error = "redis broker is closed"
        self._mark_down(self._last_error)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._disconnect(wait=True)
        await self._pool.disconnect()

    # --- introspection for tests and metrics ----------------------------------------------------

    @property
    def topics(self) -> frozenset[str]:
        """Topics this process wants to receive (what it re-subscribes after a reconnect)."""
        return frozenset(self._wanted.values())

    @property
    def available(self) -> bool:
        return self._available

    # --- links ----------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = self._reconnect_min
        while not self._closed:
            self._lost.clear()
            try:
                await self._connect()
            except Exception as exc:  # any failure to connect: try again later
                self.links_failed += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                self._last_error = str(exc) or type(exc).__name__
                self._live.clear()
                if not self._closed:
                    await self._disconnect()
                log.warning("redis broker: connect failed (%s); retrying", self._last_error)
            else:
                delay = self._reconnect_min
                self._tell("on_link_up")
                assert self._sub is not None
                reader = asyncio.create_task(self._read_loop(self._sub), name="redis-broker-reader")
                watchdog = asyncio.create_task(self._watchdog(self._sub), name="redis-broker-ping")
                try:
                    await self._lost.wait()
                finally:
                    reader.cancel()
                    watchdog.cancel()
                    for task in (reader, watchdog):
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                    self.links_failed += 1
                    self._down_since = time.monotonic()
                    if not self._closed:
                        log.warning("redis broker: link lost (%s); reconnecting", self._last_error)
                    self._mark_down(self._last_error)
                    if not self._closed:
                        self._tell("on_link_down", self._last_error)
                    if not self._closed:  # close() waits for the sockets itself
                        await self._disconnect()
            if self._closed:
                return
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self._reconnect_max)

    async def _connect(self) -> None:
        # socket_connect_timeout bounds the TCP connect; socket_timeout bounds every read until
        # the link is up, so a server that accepts but does not answer (blocked, paused) cannot
        # hang the handshake or the re-subscribe. Then reads wait as long as it takes (pub/sub is
        # quiet when nothing happens) and the watchdog PINGs instead.
        sub: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        self._sub = sub
        pub: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        self._pub = pub
        for conn in (sub, pub):
            conn.socket_timeout = self._connect_timeout
            await conn.connect()  # type: ignore[no-untyped-call]
        sent = list(self._wanted)
        for start in range(0, len(sent), _SUBSCRIBE_CHUNK):
            await _send(sub, b"SUBSCRIBE", *sent[start : start + _SUBSCRIBE_CHUNK])
        confirmed = 0
        while confirmed < len(sent):  # nobody else reads yet: take the confirmations here
            reply = await sub.read_response()
            if reply[0] == b"subscribe":
                confirmed += 1
                topic = self._wanted.get(reply[1])
                if topic is not None:
                    self._live[reply[1]] = topic
            else:
                self._dispatch(reply)
        sub.socket_timeout = pub.socket_timeout = None
        self._available = True
        self.connects += 1
        self._last_error = ""
        self._up.set()
        stale = [channel for channel in sent if channel not in self._wanted]
        if stale:  # given up while we were re-subscribing
            async with self._command_lock:
                self._acks.extend((channel, None) for channel in stale)
                await _send(sub, b"UNSUBSCRIBE", *stale)
        subscribed = len(sent) - len(stale)
        if self._down_since is None:
            log.info("redis broker: connected, %d topic(s) subscribed", subscribed)
        else:
            log.info("redis broker: reconnected after %.1f s, %d topic(s) subscribed",
                     time.monotonic() - self._down_since, subscribed)
            self._down_since = None

    async def _read_loop(self, sub: AbstractConnection) -> None:
        read = sub.read_response
        live = self._live
        acks = self._acks
        handler = self._handler
        assert handler is not None
        try:
            while True:
                reply = await read()
                kind = reply[0]
                if kind == b"message":
                    topic = live.get(reply[1])
                    if topic is not None:
                        try:
                            handler.on_message(topic, reply[2])
                        except Exception:  # a handler bug must not take the link down
                            log.exception("broker handler failed on topic %s", topic)
                elif kind == b"subscribe" or kind == b"unsubscribe":
                    self._confirmed(*acks.popleft())
                else:  # [b"pong", b""] in pub/sub mode, b"PONG" with no subscription
                    self._pong = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._link_broken(exc)

    def _confirmed(self, channel: bytes, ack: asyncio.Future[None] | None) -> None:
        if ack is None:
            return  # an UNSUBSCRIBE: the channel left _live when it was asked for
        if self._pending.get(channel) is ack:  # not given up (or asked for again) since
            del self._pending[channel]
            self._live[channel] = self._wanted[channel]
        if not ack.done():
            ack.set_result(None)

    def _dispatch(self, reply: list[bytes]) -> None:
        """A message that arrived while re-subscribing (its channel was confirmed before)."""
        if reply[0] == b"message":
            topic = self._live.get(reply[1])
            if topic is not None and self._handler is not None:
                try:
                    self._handler.on_message(topic, reply[2])
                except Exception:
                    log.exception("broker handler failed on topic %s", topic)

    async def _watchdog(self, sub: AbstractConnection) -> None:
        """PING the subscribe link; no answer within one interval means it is dead."""
        try:
            while True:
                self._pong = False
                await _send(sub, b"PING")
                await asyncio.sleep(self._health_interval)
                if not self._pong:
                    self._link_broken(TimeoutError("no PONG from redis"))
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._link_broken(exc)

    async def _write_loop(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            pub = self._pub
            try:
                if not self._available or pub is None:
                    raise ConnectionError(self._last_error or "not connected")
                if not pub.is_connected:  # see _send
                    raise ConnectionError("publish link is closed")
                await pub.send_packed_command([command for command, _ in batch], check_health=False)
                for _, done in batch:
                    reply = await pub.read_response()
                    if done is not None and not done.done():
                        done.set_result(reply)
            except asyncio.CancelledError:
                self._fail(batch, "redis broker is closed")
                raise
            except Exception as exc:
                self._fail(batch, str(exc) or type(exc).__name__)
                self._link_broken(exc)

    # --- failure handling -----------------------------------------------------------------------

    def _tell(self, event: str, *args: str) -> None:
        """Link news for a handler that listens for it (LinkHandler); its bugs stay its own."""
        callback = getattr(self._handler, event, None)
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a handler bug must not stop the reconnect
            log.exception("broker handler failed on %s", event)

    def _link_broken(self, exc: BaseException) -> None:
        if not self._lost.is_set():
            self._last_error = str(exc) or type(exc).__name__
            self._lost.set()

    def _mark_down(self, reason: str) -> None:
        self._available = False
        self._up.clear()
        error = BrokerUnavailable(f"redis broker unavailable: {reason}")
        for channel, ack in self._pending.items():
            self._wanted.pop(channel, None)
            if not ack.done():
                ack.set_exception(error)
        self._pending.clear()
        self._live.clear()
        self._acks.clear()
        queued, self._queue = self._queue, []
        self._fail(queued, reason)

    @staticmethod
    def _fail(items: list[tuple[bytes, asyncio.Future[Any] | None]], reason: str) -> None:
        error = BrokerUnavailable(f"redis broker unavailable: {reason}")
        for _, done in items:
            if done is not None and not done.done():
                done.set_exception(error)

    async def _disconnect(self, *, wait: bool = False) -> None:
        """Close both links; ``wait`` for the sockets to close (on close(), before the loop may
        end) rather than only starting to close them (while reconnecting)."""
        for conn in (self._sub, self._pub):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=not wait)
        self._sub = self._pub = None


async def _send(conn: AbstractConnection, *args: bytes) -> None:
    """Send a command on a link that is still connected, else raise ConnectionError.

    redis-py reconnects a closed connection by itself when asked to send; on a link this broker
    already gave up, that would open a socket nobody reads (holding subscriptions nobody wants).
    The check and the write happen without an await in between.
    """
    if not conn.is_connected:
        raise ConnectionError("redis link is closed")
    await conn.send_command(*args, check_health=False)


_: type[Broker] = RedisBroker
