"""Retention: deletes what onair no longer needs, in short batched transactions.

* Agora token ledger rows ``retention_token_grace`` seconds after the token expired (until then
  the ledger still recognises it, revoked or not);
* ``stream_viewers`` rows of viewers who left ``retention_viewer_grace`` seconds ago;
* with ``chat_retention_days`` set, the chat of streams that ended more than that many days
  ago (each stream is marked once its chat is gone, so later passes do not look at it again);
* the uid roster (``stream_uids``) of streams that ended ``retention_roster_grace`` seconds ago:
  an ended stream issues no token, so nothing reads it again (marked the same way).

Each batch is its own transaction (at most ``retention_batch_size`` rows), so no lock is held
for long and a busy SQLite writer or PostgreSQL row is released between batches. The reaper
runs :meth:`Pruner.prune` in the process holding its lease, a bounded number of batches per
pass; ``onair prune`` runs it until nothing is left.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from onair.domain.clock import Clock
from onair.settings import Settings
from onair.store import retention as store
from onair.store.db import Database

KINDS = ("tokens_pruned", "viewers_pruned", "chat_pruned", "roster_pruned")


@dataclass(frozen=True)
class RetentionPolicy:
    token_grace: float
    viewer_grace: float
    chat_days: float | None
    batch: int
    batches_per_pass: int
    roster_grace: float = 86400.0

    @classmethod
    def of(cls, settings: Settings) -> RetentionPolicy:
        return cls(settings.retention_token_grace, settings.retention_viewer_grace,
                   settings.chat_retention_days, settings.retention_batch_size,
                   settings.retention_batches_per_pass, settings.retention_roster_grace)


class Pruner:
    def __init__(self, db: Database, clock: Clock, policy: RetentionPolicy) -> None:
        self._db = db
        self._clock = clock
        self.policy = policy
        self._deadline: float | None = None

    async def prune(self, max_batches: int | None = None,
                    budget: float | None = None) -> dict[str, int]:
        """Delete what is due, at most ``max_batches`` transactions per kind (None: until done)
        and no new transaction after ``budget`` seconds (the reaper stays well inside its lease).
        Returns rows deleted per kind."""
        now = self._clock.now()
        p = self.policy
        self._deadline = time.monotonic() + budget if budget is not None else None
        done = dict.fromkeys(KINDS, 0)
        done["tokens_pruned"] = await self._batches(
            lambda conn: store.delete_expired_tokens(conn, now - timedelta(seconds=p.token_grace), p.batch),
            max_batches)
        done["viewers_pruned"] = await self._batches(
            lambda conn: store.delete_left_viewers(conn, now - timedelta(seconds=p.viewer_grace), p.batch),
            max_batches)
        if p.chat_days is not None:
            done["chat_pruned"] = await self._per_stream(
                store.streams_to_purge, store.delete_stream_chat, store.mark_chat_purged,
                now - timedelta(days=p.chat_days), now, max_batches)
        done["roster_pruned"] = await self._per_stream(
            store.rosters_to_purge, store.delete_stream_roster, store.mark_roster_purged,
            now - timedelta(seconds=p.roster_grace), now, max_batches)
        return done

    async def _batches(self, step: Callable[[Any], Awaitable[int]], max_batches: int | None) -> int:
        total, runs = 0, 0
        while (max_batches is None or runs < max_batches) and not self._out_of_time():
            async with self._db.write() as conn:
                deleted = await step(conn)
            total, runs = total + deleted, runs + 1
            if deleted < self.policy.batch:
                break
        return total

    async def _per_stream(self, due: Callable[[Any, datetime, int], Awaitable[list[str]]],
                          delete: Callable[[Any, str, int], Awaitable[int]],
                          mark: Callable[[Any, str, datetime], Awaitable[None]],
                          cutoff: datetime, now: datetime, max_batches: int | None) -> int:
        """Rows of ended streams (chat, roster): each due stream's rows in batches, then the
        stream is marked in the transaction of its last batch, so no pass looks at it again."""
        total, runs = 0, 0
        while (max_batches is None or runs < max_batches) and not self._out_of_time():
            async with self._db.read() as conn:
                streams = await due(conn, cutoff, self.policy.batch)
            if not streams:
                break
            for stream_id in streams:
                while True:
                    if (max_batches is not None and runs >= max_batches) or self._out_of_time():
                        return total
                    async with self._db.write() as conn:
                        deleted = await delete(conn, stream_id, self.policy.batch)
                        if deleted < self.policy.batch:
                            await mark(conn, stream_id, now)
                    total, runs = total + deleted, runs + 1
                    if deleted < self.policy.batch:
                        break
            if len(streams) < self.policy.batch:
                break
        return total

    def _out_of_time(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline
