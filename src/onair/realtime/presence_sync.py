"""Shared presence (distributed mode): this process's presence entries, kept in the shared store.

Every local track and leave is written to the store (``broker/presence_base.py``) through the
node's publish queue, in order with the relays; a join of a topic whose other processes' entries
are not known yet seeds them from the store. The store expires the entries of a process whose
heartbeat stops; when ours lapsed (the store was unreachable, the process stalled) the heartbeat
finds it and every local entry is tracked again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from onair.broker.presence_base import run_heartbeat
from onair.realtime.hub import Hub

Enqueue = Callable[[Callable[[], Awaitable[Any]]], bool]  # node.Node.enqueue


class PresenceSync:
    def __init__(self, node_id: str, open_store: Callable[[], Any], heartbeat: float = 5.0) -> None:
        self.node_id = node_id
        self._open_store = open_store  # an async context manager factory: the PresenceStore
        self._heartbeat = heartbeat
        self.store: Any = None  # the shared PresenceStore while running
        self._stack: AsyncExitStack | None = None
        self._hub: Hub | None = None
        self._enqueue: Enqueue | None = None

    async def start(self, hub: Hub, enqueue: Enqueue, spawn: Callable[[Any], None]) -> None:
        """Open the store and keep this node alive in it (``spawn`` runs the heartbeat)."""
        self._hub, self._enqueue = hub, enqueue
        self._stack = AsyncExitStack()
        self.store = await self._stack.enter_async_context(self._open_store())
        spawn(run_heartbeat(self.store, self.node_id, self._heartbeat, self._retrack))

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    def active(self) -> bool:
        return self.store is not None

    def changed(self, member: Any, entry: Any) -> None:
        """The hub's presence hook: a local member tracked ``entry`` (None: left or untracked)."""
        store, ref = self.store, f"{member.client.id}.{member.uid}"
        if store is None or self._enqueue is None:
            return
        if entry is None:
            self._enqueue(lambda: store.untrack(member.topic, self.node_id, ref))
        else:
            key, meta, phx_ref = entry.key, entry.meta, entry.ref
            self._enqueue(lambda: store.track(member.topic, self.node_id, ref, key, meta, phx_ref))

    async def seed(self, topic: str) -> None:
        """Load other processes' entries of ``topic`` (the dispatcher's join)."""
        if self.store is not None and self._hub is not None and self._hub.needs_remote_presence(topic):
            state = await self.store.list(topic)
            self._hub.seed_remote_presence(topic, state)

    async def _retrack(self) -> None:
        """Our heartbeat lapsed and the store dropped our entries: track them again."""
        assert self._hub is not None
        for member in self._hub.local_presence():
            self.changed(member, member.presence)
