"""In-process presence store: the embedded default, and the model the Redis store must match.

Stores sharing one ``PresenceTable`` behave like processes sharing one Redis (tests run several
"nodes" in one event loop that way). Time is ``clock()`` seconds, monotonic by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from onair.broker.presence_base import (
    Meta,
    PresenceState,
    PresenceStore,
    Publish,
    check_ids,
    decode_entry,
    encode_diff,
    encode_entry,
    track_diff,
)


class PresenceTable:
    def __init__(self) -> None:
        self.entries: dict[str, dict[tuple[str, str], bytes]] = {}  # topic -> (node, ref) -> entry
        self.deadlines: dict[str, float] = {}  # node -> alive until
        self.node_entries: dict[str, set[tuple[str, str]]] = {}  # node -> {(topic, ref)}


class MemoryPresenceStore:
    def __init__(
        self,
        publish: Publish,
        *,
        ttl: float,
        table: PresenceTable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._ttl = ttl
        self._table = table if table is not None else PresenceTable()
        self._clock = clock

    async def track(
        self, topic: str, node_id: str, ref: str, key: str, meta: Meta, phx_ref: str | None = None
    ) -> None:
        check_ids(node_id, ref)
        table = self._table
        table.deadlines.setdefault(node_id, self._clock() + self._ttl)
        entries = table.entries.setdefault(topic, {})
        new = encode_entry(node_id, ref, key, meta, phx_ref)
        old = entries.get((node_id, ref))
        entries[(node_id, ref)] = new
        table.node_entries.setdefault(node_id, set()).add((topic, ref))
        diff = track_diff(node_id, new, old)
        if diff is not None:
            await self._publish(topic, diff)

    async def untrack(self, topic: str, node_id: str, ref: str) -> None:
        check_ids(node_id, ref)
        old = self._remove(topic, node_id, ref)
        if old is not None:
            await self._publish(topic, encode_diff(node_id, leaves=[decode_entry(old)]))

    async def list(self, topic: str) -> PresenceState:
        now = self._clock()
        deadlines = self._table.deadlines
        state: PresenceState = {}
        for (node_id, _), value in self._table.entries.get(topic, {}).items():
            if deadlines.get(node_id, now - 1) >= now:
                key, meta = decode_entry(value)
                state.setdefault(key, []).append(meta)
        return state

    async def heartbeat(self, node_id: str) -> bool:
        check_ids(node_id, "-")
        now = self._clock()
        deadlines = self._table.deadlines
        was_alive = deadlines.get(node_id, now - 1) >= now
        leaves: dict[tuple[str, str], list[tuple[str, Meta]]] = {}  # (topic, node) -> entries
        for dead in [node for node, deadline in deadlines.items() if deadline < now]:
            for topic, ref in list(self._table.node_entries.get(dead, ())):
                old = self._remove(topic, dead, ref)
                if old is not None:
                    leaves.setdefault((topic, dead), []).append(decode_entry(old))
            del deadlines[dead]
            self._table.node_entries.pop(dead, None)
        deadlines[node_id] = now + self._ttl
        for (topic, dead), entries in leaves.items():
            await self._publish(topic, encode_diff(dead, leaves=entries))
        return was_alive

    def _remove(self, topic: str, node_id: str, ref: str) -> bytes | None:
        entries = self._table.entries.get(topic)
        old = entries.pop((node_id, ref), None) if entries is not None else None
        if old is None:
            return None
        if not entries:
            del self._table.entries[topic]
        owned = self._table.node_entries.get(node_id)
        if owned is not None:
            owned.discard((topic, ref))
        return old


_: type[PresenceStore] = MemoryPresenceStore
