"""Per-user token buckets that every onair process sharing a broker also shares.

A rate limit kept in one process multiplies by the number of processes behind the load
balancer. With ``ONAIR_BROKER_URL=redis://…`` the buckets live in Redis (``buckets_redis``: one
Lua script per take, so concurrent takes from several processes are atomic); with the in-memory
broker they live in the process, which is then the only one. Both implement
:class:`onair.domain.chat.TokenBucket` exactly: a contract test runs the same takes against
each and against the pure rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from onair.domain.chat import TokenBucket
from onair.domain.expiring_map import ExpiringMap


class BucketsUnavailable(Exception):
    """The shared buckets could not be reached (the caller decides whether to let requests
    through)."""


@dataclass(frozen=True)
class Take:
    allowed: bool
    retry_after: float  # seconds until one token is there again (0 when allowed)


class Buckets(Protocol):
    async def take(self, key: str, now: float) -> Take:
        """Spend one token of ``key``'s bucket at ``now`` (seconds); refused takes cost none.
        Raises :class:`BucketsUnavailable` when the shared store is out of reach."""
        ...

    async def close(self) -> None: ...


class MemoryBuckets:
    """In-process buckets. A bucket that has refilled carries no information, so it is forgotten
    (``ExpiringMap``): once per refill horizon (``burst / rate`` seconds, after which every
    bucket is full) and whenever the map outgrows ``max_tracked``, so a take stays O(1)
    amortized even when more than ``max_tracked`` users are sending at once."""

    def __init__(self, bucket: TokenBucket, max_tracked: int) -> None:
        self._bucket = bucket
        # key → theoretical arrival time: the bucket is full again from then on
        self._tats: ExpiringMap[float] = ExpiringMap(bucket.burst / bucket.rate, max_tracked, float)

    async def take(self, key: str, now: float) -> Take:
        allowed, tat, retry_after = self._bucket.take(self._tats.get(key), now)
        if not allowed:
            return Take(False, retry_after)
        assert tat is not None
        self._tats.put(key, tat, now)
        return Take(True, 0.0)

    def __len__(self) -> int:
        return len(self._tats)

    async def close(self) -> None:
        self._tats.clear()
