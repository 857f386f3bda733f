"""Brokers carry events and presence between onair processes (see base.py, presence_base.py).

``create_broker(url, settings)``, ``open_presence_store(url, publish, settings)`` and
``create_buckets(url, …)`` (rate limits) pick the implementation from the URL: nothing or
``memory://`` for one process; ``redis://``, ``rediss://`` or ``unix://`` to share one Redis
between processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from onair.broker.base import Broker
from onair.broker.buckets import Buckets, MemoryBuckets
from onair.broker.presence_base import PresenceStore, Publish
from onair.domain.chat import TokenBucket
from onair.settings import Settings

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _is_memory(url: str | None) -> bool:
    if url is None or url in ("", "memory://"):
        return True
    if url.startswith(REDIS_SCHEMES):
        return False
    raise ValueError(f"unsupported broker URL: {url!r} (use redis://… or leave it unset)")


def create_broker(url: str | None, settings: Settings | None = None) -> Broker:
    """In-memory broker for None/``memory://``; Redis for ``redis://`` and friends.

    ``settings`` supplies the Redis tuning (``broker_*``); defaults when omitted.
    """
    if _is_memory(url):
        from onair.broker.memory import MemoryBroker

        return MemoryBroker()
    from onair.broker.redis import RedisBroker

    assert url is not None
    s = settings or Settings()
    return RedisBroker(
        url,
        key_prefix=s.broker_key_prefix,
        connect_timeout=s.broker_connect_timeout,
        reconnect_min=s.broker_reconnect_min,
        reconnect_max=s.broker_reconnect_max,
        health_interval=s.broker_health_interval,
    )


@asynccontextmanager
async def open_presence_store(
    url: str | None, publish: Publish, settings: Settings | None = None
) -> AsyncIterator[PresenceStore]:
    """The presence store that goes with ``create_broker(url)``; ``publish`` is that broker's.

    Use in the app's lifespan (``AsyncExitStack.enter_async_context``): the Redis store owns a
    connection pool that is closed on exit.
    """
    s = settings or Settings()
    if _is_memory(url):
        from onair.broker.presence_memory import MemoryPresenceStore

        yield MemoryPresenceStore(publish, ttl=s.presence_ttl)
        return
    from onair.broker.presence_redis import open_redis_presence

    assert url is not None
    async with open_redis_presence(
        url, publish, ttl=s.presence_ttl, key_prefix=s.broker_key_prefix
    ) as store:
        yield store


def create_buckets(url: str | None, bucket: TokenBucket, *, name: str, max_tracked: int,
                   settings: Settings | None = None) -> Buckets:
    """Token buckets shared like ``create_broker(url)`` shares events: in this process for the
    in-memory broker, in Redis for a Redis one. ``name`` keeps limits apart in Redis."""
    if _is_memory(url):
        return MemoryBuckets(bucket, max_tracked)
    from onair.broker.buckets_redis import RedisBuckets

    assert url is not None
    s = settings or Settings()
    return RedisBuckets(url, bucket, name=name, key_prefix=s.broker_key_prefix,
                        timeout=s.broker_connect_timeout)
