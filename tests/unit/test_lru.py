"""LruTtl: bounded, expiring, and a fill that raced with an invalidation is refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from onair.lru import MISS, LruTtl


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hit_miss_and_expiry() -> None:
    clock = Clock()
    cache: LruTtl[str, int | None] = LruTtl(10, 5.0, monotonic=clock)
    assert cache.get("a") is MISS
    assert cache.put("a", 1, cache.ticket())
    assert cache.put("none", None, cache.ticket())
    assert cache.get("a") == 1
    assert cache.get("none") is None  # a cached None is a hit
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is MISS
    assert (cache.hits, cache.misses) == (3, 2)


def test_a_shorter_life_is_kept_a_longer_one_is_cut_to_the_ttl() -> None:
    clock = Clock()
    cache: LruTtl[str, int] = LruTtl(10, 5.0, monotonic=clock)
    cache.put("short", 1, cache.ticket(), ttl=1.0)
    cache.put("long", 2, cache.ticket(), ttl=60.0)
    assert not cache.put("past", 3, cache.ticket(), ttl=-1.0)
    clock.now = 1.0
    assert cache.get("short") is MISS
    assert cache.get("long") == 2
    clock.now = 5.0
    assert cache.get("long") is MISS
    assert cache.get("past") is MISS


def test_least_recently_used_goes_first() -> None:
    cache: LruTtl[str, int] = LruTtl(2, 5.0)
    cache.put("a", 1, cache.ticket())
    cache.put("b", 2, cache.ticket())
    assert cache.get("a") == 1  # b is now the oldest
    cache.put("c", 3, cache.ticket())
    assert cache.get("b") is MISS
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert len(cache) == 2


def test_a_fill_that_started_before_an_invalidation_is_refused() -> None:
    cache: LruTtl[str, str] = LruTtl(10, 5.0)
    ticket = cache.ticket()  # a reader starts reading the database
    cache.invalidate("s")  # a change commits meanwhile
    assert not cache.put("s", "old", ticket)
    assert cache.get("s") is MISS
    assert cache.put("other", "fine", ticket)  # other keys are not held up
    assert cache.put("s", "new", cache.ticket())
    assert cache.get("s") == "new"


def test_forgotten_invalidations_still_refuse_old_fills() -> None:
    cache: LruTtl[str, str] = LruTtl(2, 5.0)
    ticket = cache.ticket()
    for key in ("a", "b", "c", "d"):  # "a" falls out of the invalidation map
        cache.invalidate(key)
    assert not cache.put("a", "old", ticket)
    assert cache.put("a", "new", cache.ticket())


def test_clear_refuses_every_fill_in_flight_and_zero_ttl_turns_it_off() -> None:
    cache: LruTtl[str, int] = LruTtl(10, 5.0)
    ticket = cache.ticket()
    cache.put("a", 1, ticket)
    cache.clear()
    assert cache.get("a") is MISS
    assert not cache.put("b", 2, ticket)
    off: LruTtl[str, int] = LruTtl(10, 0.0)
    assert not off.enabled
    assert not off.put("a", 1, off.ticket())
    assert off.get("a") is MISS


@given(st.lists(st.tuples(st.sampled_from(["get", "put", "inv", "begin", "end"]),
                          st.integers(0, 5)), max_size=80))
def test_never_serves_a_value_older_than_the_last_invalidation(ops: list[tuple[str, int]]) -> None:
    """Against a model: every key has a current version (bumped by each invalidation); a reader
    reads the version at 'begin' and offers it at 'end'; a get never returns an old version."""
    cache: LruTtl[int, int] = LruTtl(3, 100.0)
    version = dict.fromkeys(range(6), 0)
    reads: dict[int, tuple[int, int]] = {}  # key -> (ticket, version read)
    for op, key in ops:
        if op == "get":
            got = cache.get(key)
            assert got is MISS or got == version[key]
        elif op == "put":
            cache.put(key, version[key], cache.ticket())
        elif op == "inv":
            version[key] += 1
            cache.invalidate(key)
        elif op == "begin":
            reads[key] = (cache.ticket(), version[key])
        elif key in reads:
            ticket, seen = reads.pop(key)
            cache.put(key, seen, ticket)
        assert len(cache) <= 3
