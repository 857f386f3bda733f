"""A bounded least-recently-used map with a time to live and fill tickets.

Why not ``functools.lru_cache`` or cachetools' ``TLRUCache``: a cache in front of the database
must refuse a fill that raced with an invalidation. A reader takes a :meth:`LruTtl.ticket`
before it reads the database and offers its result with that ticket; :meth:`LruTtl.put` drops
it when the key was invalidated after the ticket was taken (the read may have seen the row from
before the change). Invalidation generations are kept per key in a second bounded map; keys that
fall out of it are covered by ``_floor``, the newest generation forgotten, so a fill is refused
conservatively, never wrongly accepted.

Single event loop, no locks: nothing here awaits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS = _Miss()  # "not cached"; a cached None (e.g. "no such stream") is a hit


class LruTtl(Generic[K, V]):
    """At most ``max_size`` entries, each served for ``ttl`` seconds at most (``ttl`` 0: off)."""

    def __init__(self, max_size: int, ttl: float, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self._monotonic = monotonic
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()  # key -> (expires, value)
        self._generation = 0
        self._invalidated: OrderedDict[K, int] = OrderedDict()  # key -> generation of its last drop
        self._floor = 0  # newest generation dropped from _invalidated
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_size > 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | _Miss:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return MISS
        if item[0] <= self._monotonic():
            del self._items[key]
            self.misses += 1
            return MISS
        self._items.move_to_end(key)
        self.hits += 1
        return item[1]

    def ticket(self) -> int:
        """Take before reading what will be offered to :meth:`put`."""
        return self._generation

    def put(self, key: K, value: V, ticket: int, *, ttl: float | None = None) -> bool:
        """Keep ``value`` unless ``key`` was invalidated since ``ticket``; ``ttl`` may shorten
        (never lengthen) this entry's life. Returns whether it was kept."""
        if not self.enabled:
            return False
        if self._invalidated.get(key, self._floor) > ticket:
            return False  # the read may predate a change: do not serve it
        life = self.ttl if ttl is None else min(ttl, self.ttl)
        if life <= 0:
            return False
        self._items[key] = (self._monotonic() + life, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)
        return True

    def invalidate(self, key: K) -> None:
        """Drop ``key`` and refuse fills whose ticket predates this call."""
        self._generation += 1
        self._items.pop(key, None)
        self._invalidated.pop(key, None)
        self._invalidated[key] = self._generation
        while len(self._invalidated) > self.max_size:
            _, generation = self._invalidated.popitem(last=False)
            self._floor = max(self._floor, generation)

    def clear(self) -> None:
        """Drop everything and refuse every fill in flight."""
        self._generation += 1
        self._items.clear()
        self._invalidated.clear()
        self._floor = self._generation
