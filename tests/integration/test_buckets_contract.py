"""Token buckets, in process and in Redis, against the pure rule (onair.domain.chat.TokenBucket).

The same takes (keys and times drawn by Hypothesis) go to the pure rule, to MemoryBuckets and to
RedisBuckets; every answer must agree. Redis is ``ONAIR_TEST_REDIS_URL`` (the machine's), each
example under a key prefix of its own; skipped without it unless ONAIR_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onair.broker.buckets import BucketsUnavailable, MemoryBuckets
from onair.broker.buckets_redis import RedisBuckets
from onair.domain.chat import TokenBucket
from tests.conftest import REDIS_URL, need_redis

BASE = 1_790_000_000.0  # a unix time like the clock's


takes = st.lists(
    st.tuples(st.sampled_from(["ann", "bob", "cy"]),
              st.integers(min_value=0, max_value=1_500)),  # ms since the previous take
    min_size=1, max_size=60,
)
buckets = st.builds(TokenBucket, rate=st.sampled_from([0.5, 2.0, 3.0, 10.0]),
                    burst=st.integers(min_value=1, max_value=5))


async def answers_of(store: MemoryBuckets | RedisBuckets,
                     sequence: list[tuple[str, int]]) -> list[tuple[bool, float]]:
    now, out = BASE, []
    for key, gap_ms in sequence:
        now += gap_ms / 1000
        take = await store.take(key, now)
        out.append((take.allowed, take.retry_after))
    return out


def reference(bucket: TokenBucket, sequence: list[tuple[str, int]]) -> list[tuple[bool, float]]:
    tats: dict[str, float | None] = {}
    now, out = BASE, []
    for key, gap_ms in sequence:
        now += gap_ms / 1000
        allowed, tat, retry_after = bucket.take(tats.get(key), now)
        if allowed:
            tats[key] = tat
        out.append((allowed, retry_after))
    return out


def same(got: list[tuple[bool, float]], want: list[tuple[bool, float]]) -> None:
    assert [a for a, _ in got] == [a for a, _ in want]
    assert all(abs(g - w) < 1e-6 for (_, g), (_, w) in zip(got, want, strict=True))


@settings(max_examples=150, deadline=None)
@given(bucket=buckets, sequence=takes)
def test_memory_buckets_follow_the_rule(bucket: TokenBucket,
                                        sequence: list[tuple[str, int]]) -> None:
    got = asyncio.run(answers_of(MemoryBuckets(bucket, max_tracked=2), sequence))
    same(got, reference(bucket, sequence))


@pytest.mark.redis
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bucket=buckets, sequence=takes)
def test_redis_buckets_follow_the_rule(bucket: TokenBucket,
                                       sequence: list[tuple[str, int]]) -> None:
    need_redis()

    async def run() -> list[tuple[bool, float]]:
        store = RedisBuckets(REDIS_URL, bucket, name="contract",
                             key_prefix=f"onair-test-{uuid.uuid4().hex}:", timeout=2.0)
        try:
            return await answers_of(store, sequence)
        finally:
            await store.close()

    same(asyncio.run(run()), reference(bucket, sequence))


@pytest.mark.redis
async def test_redis_buckets_are_shared_and_expire_when_full() -> None:
    need_redis()
    prefix = f"onair-test-{uuid.uuid4().hex}:"
    bucket = TokenBucket(rate=10.0, burst=3)
    first, second = (RedisBuckets(REDIS_URL, bucket, name="chat-send", key_prefix=prefix,
                                  timeout=2.0) for _ in range(2))
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        # Two processes' worth of takes at the same instant share one bucket of three.
        results = [await store.take("ann", BASE) for store in (first, second, first, second)]
        assert [r.allowed for r in results] == [True, True, True, False]
        assert results[-1].retry_after == pytest.approx(0.1, abs=1e-6)
        ttl = await client.pttl(f"{prefix}bucket:chat-send:ann")
        assert 0 < ttl <= 300  # full again 0.3 s after three takes at 10/s
        assert await client.pttl(f"{prefix}bucket:chat-send:bob") == -2  # never took: no key
    finally:
        await first.close()
        await second.close()
        await client.aclose()


async def test_unreachable_redis_is_reported_not_raised_raw(free_port: int) -> None:
    store = RedisBuckets(f"redis://127.0.0.1:{free_port}/0", TokenBucket(rate=1.0, burst=1),
                         name="x", key_prefix="t:", timeout=0.5)
    try:
        with pytest.raises(BucketsUnavailable):
            await store.take("ann", BASE)
    finally:
        await store.close()


@pytest.mark.redis
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bucket=buckets, sequence=takes)
def test_concurrent_redis_takes_batch_and_still_follow_the_rule(
    bucket: TokenBucket, sequence: list[tuple[str, int]]
) -> None:
    """Takes submitted together share round trips (one script call for many) and are applied
    in submission order, the same key twice included."""
    need_redis()

    async def run() -> list[tuple[bool, float]]:
        store = RedisBuckets(REDIS_URL, bucket, name="contract",
                             key_prefix=f"onair-test-{uuid.uuid4().hex}:", timeout=2.0)
        now, calls = BASE, []
        for key, gap_ms in sequence:
            now += gap_ms / 1000
            calls.append(store.take(key, now))
        try:
            return [(t.allowed, t.retry_after) for t in await asyncio.gather(*calls)]
        finally:
            await store.close()

    same(asyncio.run(run()), reference(bucket, sequence))
