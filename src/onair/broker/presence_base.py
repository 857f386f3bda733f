"""The PresenceStore interface: who is present on a topic, shared by every onair process.

An entry is one tracked presence: one channel join's ``track``. It is identified by the
``node_id`` of the process that holds the connection and a ``ref`` unique within that process (the
hub can use ``{connection id}:{join_ref}``); it carries the presence ``key`` (the join's presence
key, shared by e.g. one user's tabs) and the client's ``meta`` (a JSON object). Clients see each
version of an entry under a ``phx_ref``: the caller's, or by default one derived from node, ref and
content, so it is unique across processes, changes when the meta changes, and tracking the same
payload again is a no-op (as in Supabase). Tracking the same version again (same key, meta and
``phx_ref``) publishes nothing.

Expiry: a process calls ``heartbeat(node_id)`` every ``presence_heartbeat_interval`` (well below
``presence_ttl``). A process that stops doing so (crashed, partitioned) has its entries hidden from
``list`` once ``presence_ttl`` has passed since its last heartbeat, and the next heartbeat of any
process removes them and announces their leave. If a process's own heartbeat comes back ``False``
its entries were expired meanwhile: it must ``track`` its local entries again.

Diffs travel on the broker, on the entry's topic, as JSON (UTF-8) in the shape of Supabase
Realtime's ``presence_diff`` payload, so the hub can forward it without rebuilding it::

    {"kind": "presence_diff", "node": "<node_id of the entries>",
     "joins":  {"<key>": {"metas": [{"phx_ref": "<ref>", "phx_ref_prev": "<ref>", ...meta}]}},
     "leaves": {"<key>": {"metas": [{"phx_ref": "<ref>", ...meta}]}}}

``node`` is the process the entries belong to (one diff never mixes processes), so a hub that
already applied its own track/untrack locally can skip diffs of its own ``node_id``.

``track`` of a new entry publishes it in ``joins``; ``track`` of an existing (node_id, ref) with a
different key or meta replaces it and publishes the old version in ``leaves`` and the new one, with
``phx_ref_prev``, in ``joins`` (what Phoenix.Presence does for an update); ``untrack`` and expiry
publish ``leaves``. Every process with members on the topic (this one included) receives the diff
through its broker handler. A hub either lets the broker bring its own diffs back, or applies its
track/untrack locally at once (passing its ``phx_ref``) and skips diffs whose ``node`` is its
own; the one own diff it did not cause, the sweep of its expired entries, is followed by its
re-track, which others see as joins again. ``list`` returns the state as ``{key: [meta, ...]}``
(``phx_ref`` included). A hub that subscribes to the broker topic before calling ``list`` misses
no diff (it may see one it already has in the state).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import orjson

from onair.logs import log_failure
from onair.topics import PresenceDiff, encode

log = logging.getLogger(__name__)

Meta = dict[str, Any]
PresenceState = dict[str, list[Meta]]  # presence key -> metas, each with "phx_ref"
Publish = Callable[[str, bytes], Awaitable[None]]  # Broker.publish

DIFF_KIND = PresenceDiff.kind


class PresenceStore(Protocol):
    async def track(
        self, topic: str, node_id: str, ref: str, key: str, meta: Meta, phx_ref: str | None = None
    ) -> None:
        """Add or replace entry (node_id, ref) on ``topic`` and publish the diff.

        ``phx_ref`` names this version for clients; by default derived from the content.
        """

    async def untrack(self, topic: str, node_id: str, ref: str) -> None:
        """Remove entry (node_id, ref) from ``topic`` and publish the leave (idempotent)."""

    async def list(self, topic: str) -> PresenceState:
        """Live entries of ``topic``: entries of expired processes are never listed."""

    async def heartbeat(self, node_id: str) -> bool:
        """Keep ``node_id``'s entries alive for ``ttl`` and remove expired processes' entries.

        Returns False when ``node_id`` was not alive before this call: its first heartbeat (and
        no track yet), or it had expired, so its entries are gone and their leaves announced. The
        caller then tracks its local entries again.
        """


def check_ids(node_id: str, ref: str) -> None:
    """Node ids and refs are joined with ``|`` in storage keys, so they must not contain it."""
    if not node_id or "|" in node_id:
        raise ValueError(f"invalid presence node id {node_id!r}")
    if not ref or "|" in ref:
        raise ValueError(f"invalid presence ref {ref!r}")


def encode_entry(
    node_id: str, ref: str, key: str, meta: Meta, phx_ref: str | None = None
) -> bytes:
    """How stores keep an entry: ``{phx_ref}|{JSON [key, meta]}``; equal bytes = same version."""
    body = orjson.dumps([key, meta])
    if phx_ref is None:
        digest = hashlib.blake2b(f"{node_id}|{ref}|".encode() + body, digest_size=10).digest()
        return base64.b32encode(digest) + b"|" + body
    if not phx_ref or "|" in phx_ref:
        raise ValueError(f"invalid phx_ref {phx_ref!r}")
    return phx_ref.encode() + b"|" + body


def decode_entry(value: bytes) -> tuple[str, Meta]:
    """(key, meta with its ``phx_ref``) from ``encode_entry``'s bytes."""
    phx_ref, _, body = value.partition(b"|")
    key, meta = orjson.loads(body)
    return key, {**meta, "phx_ref": phx_ref.decode()}


def track_diff(node_id: str, new: bytes, old: bytes | None) -> bytes | None:
    """The diff announcing ``new`` (replacing ``old``), or None when nothing changed."""
    if old == new:
        return None
    joined = decode_entry(new)
    if old is None:
        return encode_diff(node_id, joins=[joined])
    left = decode_entry(old)
    joined[1]["phx_ref_prev"] = left[1]["phx_ref"]
    return encode_diff(node_id, joins=[joined], leaves=[left])


def encode_diff(
    node_id: str,
    joins: Iterable[tuple[str, Meta]] = (),
    leaves: Iterable[tuple[str, Meta]] = (),
) -> bytes:
    """A presence_diff message about ``node_id``'s entries from (key, tagged meta) pairs."""
    return encode(PresenceDiff(node_id, _group(joins), _group(leaves)))


def _group(entries: Iterable[tuple[str, Meta]]) -> dict[str, dict[str, list[Meta]]]:
    grouped: dict[str, dict[str, list[Meta]]] = {}
    for key, meta in entries:
        grouped.setdefault(key, {"metas": []})["metas"].append(meta)
    return grouped


async def run_heartbeat(
    store: PresenceStore,
    node_id: str,
    interval: float,
    on_expired: Callable[[], Awaitable[None]],
) -> None:
    """Heartbeat forever (run as a task); ``on_expired`` re-tracks after a lost heartbeat.

    A failed heartbeat (store unreachable) is logged and retried at the next interval: presence
    must not take the process down.
    """
    while True:
        try:
            if not await store.heartbeat(node_id):
                await on_expired()
        except Exception as exc:
            log_failure(log, "presence heartbeat failed", exc=exc)
        await asyncio.sleep(interval)
