"""Loads what the stream policy needs (seller, co-hosts, sanctions, ended) from StreamService.

Read-only, through the process's stream cache (``services/stream_cache.py``) unless ``fresh``: the
policy's reloads after a broker subscription and its periodic refreshes look for changes whose
events were lost, so they read the database (and refresh the cache with it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onair.realtime.policies import StreamFacts, Until


def _epoch(until: datetime | None) -> Until:
    return None if until is None else until.timestamp()


class StreamFactsLoader:
    def __init__(self, ctx: Any, *, fresh: bool = False) -> None:
        self._ctx = ctx
        self._fresh = fresh

    async def __call__(self, stream_id: str) -> StreamFacts | None:
        streams = self._ctx.streams
        access = await (streams.access(stream_id, fresh=True) if self._fresh
                        else streams.access(stream_id))
        if access is None:
            return None
        return StreamFacts(access.seller_id, set(access.cohosts),
                           {u: _epoch(t) for u, t in access.bans.items()},
                           {u: _epoch(t) for u, t in access.mutes.items()}, access.ended)
