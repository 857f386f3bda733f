"""Loads what the stream policy needs (seller, co-hosts, active bans) from StreamService.

Read-only, cached for a few seconds per stream; bans published as events update the cache at once
(service.py), so the cache only bounds how often joins hit the database.
"""

from __future__ import annotations

import time
from typing import Any

from onair.realtime.policies import StreamFacts


class StreamFactsLoader:
    def __init__(self, ctx: Any, ttl: float = 5.0) -> None:
        self._ctx = ctx
        self._ttl = ttl
        self._cache: dict[str, tuple[float, StreamFacts | None]] = {}

    async def __call__(self, stream_id: str) -> StreamFacts | None:
        now = time.monotonic()
        hit = self._cache.get(stream_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        facts = await self._load(stream_id)
        self._cache[stream_id] = (now, facts)
        if len(self._cache) > 10_000:
            self._cache.pop(next(iter(self._cache)))
        return facts

    def invalidate(self, stream_id: str) -> None:
        self._cache.pop(stream_id, None)

    async def _load(self, stream_id: str) -> StreamFacts | None:
        access = await self._ctx.streams.access(stream_id)
        if access is None:
            return None
        return StreamFacts(access.seller_id, set(access.cohosts), set(access.banned))
