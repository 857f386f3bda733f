"""Token buckets in Redis: shared by every onair process on one Redis (see ``buckets``).

Key: ``{prefix}bucket:{name}:{key}``, value the bucket's TAT, expiring when the bucket is full
again. ``now`` comes from the caller's clock (as for the in-process buckets): onair nodes keep
their clocks in sync anyway, since JWT expiry depends on it.
"""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from onair.broker.buckets import BucketsUnavailable, Take
from onair.domain.chat import TokenBucket

_SOURCE = resources.files("onair.broker").joinpath("bucket_take.lua").read_text()


class RedisBuckets:
    def __init__(self, url: str, bucket: TokenBucket, *, name: str, key_prefix: str,
                 timeout: float) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout,
                                               socket_timeout=timeout)
        self._script = self._client.register_script(_SOURCE)
        self._key = f"{key_prefix}bucket:{name}:"
        self._args = (repr(1.0 / bucket.rate), str(bucket.burst))

    async def take(self, key: str, now: float) -> Take:
        try:
            allowed, retry_after = await self._script(keys=[self._key + key],
                                                      args=[repr(now), *self._args])
        except (RedisError, OSError) as exc:
            raise BucketsUnavailable(type(exc).__name__) from exc
        return Take(bool(allowed), float(retry_after))

    async def close(self) -> None:
        await self._client.aclose()
