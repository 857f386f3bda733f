"""Redis presence store: presence shared by every onair process on one Redis.

Layout (``P`` is the key prefix; times are Redis server time, so node clocks do not matter):

* ``P presence:{topic}`` hash, field ``{node}|{ref}`` -> ``presence_base.encode_entry`` bytes
* ``P presence-node:{node}`` hash, field ``{ref}|{topic}``: what to remove when the node dies
* ``P presence-nodes`` sorted set, node -> alive-until in ms

Each operation is one Lua script (``presence_<op>.lua`` beside this file, loaded once and run by
EVALSHA), so an entry and its node bookkeeping never disagree. Diffs are published through the
broker's ``publish`` after the script, in the format ``presence_base`` documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

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

_SWEEP_LIMIT = 100  # expired nodes removed per heartbeat


def _script(client: aioredis.Redis, name: str) -> Any:
    source = resources.files("onair.broker").joinpath(f"presence_{name}.lua").read_text()
    return client.register_script(source)


class RedisPresenceStore:
    def __init__(
        self, client: aioredis.Redis, publish: Publish, *, ttl: float, key_prefix: str = ""
    ) -> None:
        self._client = client
        self._publish = publish
        self._ttl_ms = max(1, round(ttl * 1000))
        self._prefix = key_prefix
        self._nodes_key = f"{key_prefix}presence-nodes"
        self._track = _script(client, "track")
        self._untrack = _script(client, "untrack")
        self._list = _script(client, "list")
        self._heartbeat = _script(client, "heartbeat")

    async def track(
        self, topic: str, node_id: str, ref: str, key: str, meta: Meta, phx_ref: str | None = None
    ) -> None:
        check_ids(node_id, ref)
        new = encode_entry(node_id, ref, key, meta, phx_ref)
        old = await self._track(
            keys=[self._topic_key(topic), self._node_key(node_id), self._nodes_key],
            args=[f"{node_id}|{ref}", new, f"{ref}|{topic}", node_id, self._ttl_ms],
        )
        diff = track_diff(node_id, new, old or None)
        if diff is not None:
            await self._publish(topic, diff)

    async def untrack(self, topic: str, node_id: str, ref: str) -> None:
        check_ids(node_id, ref)
        old = await self._untrack(
            keys=[self._topic_key(topic), self._node_key(node_id)],
            args=[f"{node_id}|{ref}", f"{ref}|{topic}"],
        )
        if old:
            await self._publish(topic, encode_diff(node_id, leaves=[decode_entry(old)]))

    async def list(self, topic: str) -> PresenceState:
        flat = await self._list(keys=[self._topic_key(topic), self._nodes_key])
        state: PresenceState = {}
        for value in flat[1::2]:
            key, meta = decode_entry(value)
            state.setdefault(key, []).append(meta)
        return state

    async def heartbeat(self, node_id: str) -> bool:
        check_ids(node_id, "-")
        reply = await self._heartbeat(
            keys=[self._nodes_key], args=[node_id, self._ttl_ms, self._prefix, _SWEEP_LIMIT]
        )
        leaves: dict[tuple[str, str], list[tuple[str, Meta]]] = {}  # (topic, node) -> entries
        for i in range(1, len(reply), 3):
            dead = reply[i + 1].decode().partition("|")[0]
            leaves.setdefault((reply[i].decode(), dead), []).append(decode_entry(reply[i + 2]))
        for (topic, dead), entries in leaves.items():
            await self._publish(topic, encode_diff(dead, leaves=entries))
        return bool(reply[0])

    def _topic_key(self, topic: str) -> str:
        return f"{self._prefix}presence:{topic}"

    def _node_key(self, node_id: str) -> str:
        return f"{self._prefix}presence-node:{node_id}"


@asynccontextmanager
async def open_redis_presence(
    url: str, publish: Publish, *, ttl: float, key_prefix: str = ""
) -> AsyncIterator[RedisPresenceStore]:
    """A store with its own connection pool, closed on exit (for the app's lifespan)."""
    client = aioredis.Redis.from_url(url)
    try:
        yield RedisPresenceStore(client, publish, ttl=ttl, key_prefix=key_prefix)
    finally:
        await client.aclose()


_: type[PresenceStore] = RedisPresenceStore
