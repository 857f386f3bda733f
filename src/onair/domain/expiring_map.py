"""A per-key map of entries that each stop mattering at a time of their own, kept small in O(1)
amortized time per write.

Expired entries are dropped in one pass over the map once per ``horizon`` seconds (after which
every entry written before the pass has expired) and whenever the map has grown past
``max_tracked`` and doubled since the last pass. Each pass is paid for by the writes since the
previous one, so a write stays O(1) amortized even when more keys are live at once than
``max_tracked``. Between passes ``get`` may return an expired entry: callers check the time
themselves. Used by the in-process chat send buckets and the token issue limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringMap(Generic[V]):
    __slots__ = ("_expires_at", "_horizon", "_items", "_max_tracked", "_next_prune", "_prune_above",
                 "visited")

    def __init__(self, horizon: float, max_tracked: int, expires_at: Callable[[V], float]) -> None:
        self._horizon = horizon
        self._max_tracked = max_tracked
        self._expires_at = expires_at
        self._items: dict[str, V] = {}
        self._next_prune = float("-inf")
        self._prune_above = max_tracked
        self.visited = 0  # entries all passes have looked at (the amortized cost, for tests)

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def put(self, key: str, value: V, now: float) -> None:
        self._items[key] = value
        if now >= self._next_prune or len(self._items) > self._prune_above:
            self.visited += len(self._items)
            expires_at = self._expires_at
            self._items = {k: v for k, v in self._items.items() if expires_at(v) > now}
            self._next_prune = now + self._horizon
            self._prune_above = max(self._max_tracked, 2 * len(self._items))

    @property
    def prune_above(self) -> int:
        """The size past which the next write prunes (the map holds at most this + 1)."""
        return self._prune_above

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
