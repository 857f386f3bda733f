"""Issue 11 §5: per-user in-process maps (chat send buckets, token-issue limits) return to
baseline once their senders go quiet; the chat buckets stay O(1) per take when more users send at
once than ``max_tracked``."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from onair.broker.buckets import MemoryBuckets
from onair.domain.chat import TokenBucket

BUCKET = TokenBucket(rate=2.0, burst=10)  # every bucket is full again 5 s after its last take
HORIZON = BUCKET.burst / BUCKET.rate


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_buckets_of_quiet_senders_are_forgotten_below_the_cap() -> None:
    async def go() -> None:
        buckets = MemoryBuckets(BUCKET, max_tracked=100_000)
        for user in range(5_000):  # many streams' worth of senders, far below the cap
            assert (await buckets.take(f"user-{user}", 1.0 + user * 1e-4)).allowed
        assert len(buckets) == 5_000
        assert (await buckets.take("someone", 1.0 + HORIZON + 1)).allowed
        assert len(buckets) == 1  # back to baseline: only the sender still refilling
    run(go())


def test_more_active_senders_than_the_cap_cost_amortized_constant_work() -> None:
    async def go() -> None:
        buckets = MemoryBuckets(BUCKET, max_tracked=10)
        for user in range(2_000):  # all within one refill horizon: none may be forgotten
            await buckets.take(f"user-{user}", 1.0)
        scanned = buckets._tats.visited
        assert len(buckets) == 2_000
        assert scanned < 4 * 2_000, scanned  # doubling thresholds: linear in total, not quadratic
    run(go())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.floats(0, 3, allow_nan=False)), max_size=200))
def test_never_tracks_a_sender_whose_bucket_is_full(takes: list[tuple[int, float]]) -> None:
    """After a prune, every tracked sender still has a bucket refilling (information to keep);
    the map never exceeds max(max_tracked, twice what survived the last prune) + 1."""

    async def go() -> None:
        buckets = MemoryBuckets(BUCKET, max_tracked=4)
        now = 0.0
        for user, step in takes:
            now += step
            await buckets.take(f"u{user}", now)
            assert len(buckets) <= max(4, buckets._tats.prune_above) + 1
        await buckets.take("last", now + HORIZON + 0.001)
        assert len(buckets) == 1
    run(go())


def test_token_issue_limiter_forgets_users_after_their_window() -> None:
    """The per-user token-issue limit (in process: ``FixedWindowCounter``) returns to baseline
    too: once every user's window has closed, the next prune keeps only the newcomer."""
    from onair.services.tokens import IssueLimiter

    async def go() -> None:
        limiter = IssueLimiter("5/second", None, max_tracked=100)
        for user in range(500):
            await limiter.check(f"user-{user}")
        local = limiter._local
        assert local is not None and 100 < len(local) <= 500
        await asyncio.sleep(1.1)
        await limiter.check("someone")
        assert len(local) == 1
        await limiter.close()
    run(go())


def test_verified_token_cache_holds_at_most_jwt_cache_size() -> None:
    """ONAIR_JWT_CACHE_SIZE bounds the verified-token cache of the app's verifier: users who come
    and go (a new token each) never grow it past the bound; the newest tokens are the ones kept."""
    import tempfile
    from pathlib import Path

    from onair.app import build_context
    from onair.auth.jwt import mint_token
    from onair.settings import Settings

    secret = "cache-" + "x" * 40
    ctx = build_context(Settings(_env_file=None, jwt_secret=secret, jwt_cache_size=3,
                                 data_dir=Path(tempfile.mkdtemp())))
    tokens = [mint_token(secret, f"user-{i}", "buyer", 3600) for i in range(50)]
    for token in tokens:
        assert ctx.jwt.verify(token).user_id is not None
    assert list(ctx.jwt._cache) == tokens[-3:]
