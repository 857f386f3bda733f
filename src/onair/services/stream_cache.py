"""StreamCache: stream rows and their access facts, kept in memory, dropped on every change.

What is cached (issue 11 §4): the stream row (``StreamService.get``: GET /streams/{id}, the pages'
reads, heartbeats) and the facts the realtime policy authorizes with (``StreamService.access``:
seller, co-hosts, bans, mutes, ended), which also serve the early refusals of token issue and chat
send.
A stream that does not exist is cached too (as None), so random ids cost one read each.

Never stale authorization (issue 11 §8): the service that changes a stream row, its co-hosts or
its sanctions calls :meth:`StreamCache.changed` (or wraps the write in :meth:`changing`) after the
commit and before publishing the change's events. That drops the entry here and publishes the
drop on broker topic ``onair:cache``, which every process subscribes to, ahead of the events on
the same broker connection, so a process sees the drop before the change's events. A read
that started before a drop cannot put its older answer back (``LruTtl`` tickets). While the
broker link is down drops may be missed, so the cache empties and stays off until the link is
back. A drop lost by the broker itself (at-most-once) is outlived by ``ttl`` seconds at most.

The decisions that must be exact against concurrent writes stay in the write transactions that
record them (token issue, chat send: ``services/tokens.py``, ``services/chat.py``); the cache
answers only reads and early refusals of terminal facts there (an unknown stream; for tokens an
ended one).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import structlog

from onair.broker.base import Broker
from onair.errors import Problem
from onair.lru import MISS, LruTtl
from onair.topics import (
    CACHE_TOPIC,
    CacheDrop,
    RowEvent,
    StreamBroadcast,
    StreamState,
    decode,
    encode,
    parse_stream_topic,
)

__all__ = ["CACHE_TOPIC", "StreamCache"]

log = structlog.get_logger("onair.cache")

V = TypeVar("V")

# Events on a stream's topic that change a cached fact (see services/events.py). Chat inserts and
# viewer counts are most of the traffic and change nothing cached here but the row's counts, which
# the service drops itself; they are skipped by a prefix test, without parsing.
_SKIP_PREFIXES = (b'{"kind":"row","table":"chat_messages"', b'{"kind":"viewer_count"',
                  b'{"kind":"row","table":"stream_viewers"')
_ACCESS_TABLES = frozenset({"stream_sessions", "stream_cohosts"})
_ACCESS_BROADCASTS = frozenset({"chat_sanction"})


class StreamCache:
    """One per process; see the module docstring."""

    def __init__(self, broker: Broker | None, *, ttl: float, max_streams: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._broker = broker
        self.rows: LruTtl[str, Any] = LruTtl(max_streams, ttl, monotonic=monotonic)
        self.access: LruTtl[str, Any] = LruTtl(max_streams, ttl, monotonic=monotonic)
        self.origin = secrets.token_hex(8)  # our own drops come back from the broker: skip them
        # told of every access drop (the realtime policy's own short-lived facts)
        self.listeners: list[Callable[[str], None]] = []
        self.link_up = True
        # plain counters for /metrics
        self.invalidations: dict[str, int] = {"local": 0, "remote": 0, "event": 0, "link": 0}
        self.publish_failures = 0

    @property
    def enabled(self) -> bool:
        return self.rows.enabled

    async def start(self) -> None:
        if self._broker is not None and self.enabled:
            await self._broker.subscribe(CACHE_TOPIC)

    # --- reading -------------------------------------------------------------------------

    async def row(self, stream_id: str, load: Callable[[], Awaitable[V]]) -> V:
        return await self._through(self.rows, stream_id, load, None, fresh=False)

    async def access_of(self, stream_id: str, load: Callable[[], Awaitable[V]],
                        life: Callable[[V], float | None] | None = None, *,
                        fresh: bool = False) -> V:
        """``life(value)``: seconds the value stays true by itself (a sanction ending), if less
        than the ttl. ``fresh``: read the database whatever is cached (and cache that)."""
        return await self._through(self.access, stream_id, load, life, fresh=fresh)

    async def _through(self, cache: LruTtl[str, Any], key: str, load: Callable[[], Awaitable[V]],
                       life: Callable[[V], float | None] | None, *, fresh: bool) -> V:
        if not fresh:
            hit = cache.get(key)
            if hit is not MISS:
                return cast("V", hit)
        ticket = cache.ticket()
        value = await load()
        if self.link_up:
            cache.put(key, value, ticket, ttl=life(value) if life is not None else None)
        return value

    # --- changes ---------------------------------------------------------------------------

    def drop(self, stream_id: str, *, row: bool = True, access: bool = True) -> None:
        if row:
            self.rows.invalidate(stream_id)
        if access:
            self.access.invalidate(stream_id)
            for listener in self.listeners:
                listener(stream_id)

    async def changed(self, stream_id: str, *, row: bool = True, access: bool = True) -> None:
        """After the commit of a change to ``stream_id``: drop it here and in every process."""
        self.drop(stream_id, row=row, access=access)
        self.invalidations["local"] += 1
        if self._broker is None or not self.enabled:
            return
        message = encode(CacheDrop(stream_id, row, access, self.origin))
        try:
            await self._broker.publish(CACHE_TOPIC, message)
        except Exception as exc:  # the change stands; other processes' entries expire by ttl
            self.publish_failures += 1
            log.warning("cache_invalidation_not_published", stream_id=stream_id,
                        error=type(exc).__name__)

    @asynccontextmanager
    async def changing(self, stream_id: str, *, row: bool = True,
                       access: bool = True) -> AsyncIterator[None]:
        """Wrap a write: :meth:`changed` when it committed (or may have: any failure but a
        refusal, which is raised before anything is written)."""
        try:
            yield
        except Problem:
            raise
        except BaseException:
            await self.changed(stream_id, row=row, access=access)
            raise
        await self.changed(stream_id, row=row, access=access)

    # --- broker consumer (first in BrokerFanIn, before the realtime service) ---------------

    def on_message(self, topic: str, data: bytes) -> None:
        if topic == CACHE_TOPIC:
            self._remote_drop(data)
        elif (stream_id := parse_stream_topic(topic)) is not None and not data.startswith(_SKIP_PREFIXES):
            self._event_drop(stream_id, topic, data)

    def _remote_drop(self, data: bytes) -> None:
        try:
            message = decode(CACHE_TOPIC, data)
        except ValueError:
            message = None
        if isinstance(message, CacheDrop) and message.origin == self.origin:
            return
        if not isinstance(message, CacheDrop):
            log.warning("cache_invalidation_malformed", size=len(data))
            self.rows.clear()  # something changed, we cannot tell what
            self.access.clear()
            return
        self.drop(message.stream_id, row=message.row, access=message.access)
        self.invalidations["remote"] += 1

    def _event_drop(self, stream_id: str, topic: str, data: bytes) -> None:
        """A change event reached this process: drop what it changes even if the ``onair:cache``
        message was lost, before the realtime service (next consumer) reloads facts for it."""
        try:
            event = decode(topic, data)
        except ValueError:
            return
        if isinstance(event, StreamState) or (isinstance(event, RowEvent) and event.table in _ACCESS_TABLES) \
                or (isinstance(event, StreamBroadcast) and event.event in _ACCESS_BROADCASTS):
            self.drop(stream_id)
            self.invalidations["event"] += 1

    def on_link_down(self, reason: str) -> None:
        """Drops published meanwhile are lost: serve nothing cached until the link is back."""
        self.link_up = False
        self.rows.clear()
        self.access.clear()
        self.invalidations["link"] += 1

    def on_link_up(self) -> None:
        self.rows.clear()
        self.access.clear()
        self.link_up = True

    def sizes(self) -> dict[str, int]:
        return {"stream": len(self.rows), "access": len(self.access)}

    def lookups(self) -> dict[tuple[str, str], int]:
        return {("stream", "hit"): self.rows.hits, ("stream", "miss"): self.rows.misses,
                ("access", "hit"): self.access.hits, ("access", "miss"): self.access.misses}
