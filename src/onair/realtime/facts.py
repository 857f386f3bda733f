"""Loads what the stream policy needs (seller, co-hosts, active bans) through the store.

Read-only, cached for a few seconds per stream; bans published as events update the cache at once
(service.py), so the cache only bounds how often joins hit the database.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

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
        from onair.errors import Problem
        from onair.store import tables as t

        try:
            stream = await self._ctx.streams.get(stream_id)
        except Problem:
            return None
        now = datetime.now(timezone.utc)
        async with self._ctx.db.read() as conn:
            cohosts = (await conn.execute(
                sa.select(t.stream_cohosts.c.user_id).where(t.stream_cohosts.c.stream_id == stream_id))).scalars().all()
            s = t.chat_sanctions.c
            banned = (await conn.execute(
                sa.select(s.user_id).where(s.stream_id == stream_id, s.kind == "ban", s.lifted_at.is_(None),
                                           sa.or_(s.until.is_(None), s.until > now)))).scalars().all()
        return StreamFacts(stream.seller_id, set(cohosts), set(banned))
