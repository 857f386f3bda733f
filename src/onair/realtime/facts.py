"""Loads what the stream policy needs (seller, co-hosts, sanctions, ended) from StreamService.

Read-only and uncached: the policy caches (bounded, and kept fresh from the stream's events while
local members need it; see ``policies.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onair.realtime.policies import StreamFacts, Until


def _epoch(until: datetime | None) -> Until:
    return None if until is None else until.timestamp()


class StreamFactsLoader:
    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    async def __call__(self, stream_id: str) -> StreamFacts | None:
        access = await self._ctx.streams.access(stream_id)
        if access is None:
            return None
        return StreamFacts(access.seller_id, set(access.cohosts),
                           {u: _epoch(t) for u, t in access.bans.items()},
                           {u: _epoch(t) for u, t in access.mutes.items()}, access.ended)
