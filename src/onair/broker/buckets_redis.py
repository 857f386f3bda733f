"""Token buckets in Redis: shared by every onair process on one Redis (see ``buckets``).

Key: ``{prefix}bucket:{name}:{key}``, value the bucket's TAT, expiring when the bucket is full
again. ``now`` comes from the caller's clock (as for the in-process buckets): onair nodes keep
their clocks in sync anyway, since JWT expiry depends on it.

Takes that arrive while a round trip is out go together in the next one (``GroupCommit``: one
script call for up to ``MAX_BATCH`` takes, in arrival order). A redis-py call costs ~80 µs of
CPU here, more than a whole chat send otherwise; batched, a take costs a few µs.
"""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from onair.broker.buckets import BucketsUnavailable, Take
from onair.domain.chat import TokenBucket
from onair.group_commit import GroupCommit

_SOURCE = resources.files("onair.broker").joinpath("bucket_take.lua").read_text()
MAX_BATCH = 500


class RedisBuckets:
    def __init__(self, url: str, bucket: TokenBucket, *, name: str, key_prefix: str,
                 timeout: float) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout,
                                               socket_timeout=timeout)
        self._script = self._client.register_script(_SOURCE)
        self._key = f"{key_prefix}bucket:{name}:"
        self._args = (repr(1.0 / bucket.rate), str(bucket.burst))
        self._takes: GroupCommit[tuple[str, float], Take] = GroupCommit(self._run, MAX_BATCH)

    async def take(self, key: str, now: float) -> Take:
        return await self._takes.submit((key, now))

    async def _run(self, takes: list[tuple[str, float]]) -> list[Take | Exception]:
        try:
            reply = await self._script(keys=[self._key + key for key, _ in takes],
                                       args=[*self._args, *(repr(now) for _, now in takes)])
        except (RedisError, OSError) as exc:
            return [BucketsUnavailable(type(exc).__name__) for _ in takes]
        return [Take(bool(reply[i]), float(reply[i + 1])) for i in range(0, len(reply), 2)]

    async def close(self) -> None:
        await self._takes.close()
        await self._client.aclose()
