"""The reaper: runs StreamService.reap, then the retention prune (services/retention.py), every
`reaper_interval` in the lease holder only."""

from __future__ import annotations

import asyncio
import secrets
import time

import structlog

from onair.domain.clock import Clock
from onair.logs import outage_reason
from onair.services.retention import Pruner
from onair.services.streams import StreamService
from onair.store import leases
from onair.store.db import Database

log = structlog.get_logger("onair.reaper")
LEASE = "reaper"


class Reaper:
    def __init__(self, db: Database, streams: StreamService, clock: Clock, *, interval: float,
                 lease_seconds: float, holder: str | None = None,
                 pruner: Pruner | None = None) -> None:
        self._db = db
        self._streams = streams
        self._clock = clock
        self._interval = interval
        self._lease = lease_seconds
        self.holder = holder or secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None
        self._pruner = pruner
        self.passes = 0
        # plain counters for /metrics
        self.last_success: float | None = None  # wall-clock time of the last completed pass
        self.not_leader = 0  # passes skipped: another process holds the lease
        self.failures = 0
        self.actions: dict[str, int] = {}  # kind -> how many

    async def run_once(self) -> dict[str, int] | None:
        """One pass if this process holds the lease; None when another process does."""
        async with self._db.write() as conn:
            leader = await leases.try_acquire(conn, LEASE, self.holder, self._clock.now(),
                                              self._lease)
        if not leader:
            self.not_leader += 1
            return None
        done = await self._streams.reap()
        if self._pruner is not None:  # a bounded number of short transactions, inside the lease
            done.update(await self._pruner.prune(self._pruner.policy.batches_per_pass,
                                                 budget=self._lease / 2))
        self.passes += 1
        self.last_success = time.time()
        for kind, count in done.items():
            self.actions[kind] = self.actions.get(kind, 0) + count
        if any(done.values()):
            log.info("reaped", **done)
        return done

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep reaping; the next pass retries
                self.failures += 1
                reason = outage_reason(exc)
                if reason is not None:  # database unreachable: nothing to debug here
                    log.warning("reaper_failed", error=type(exc).__name__, reason=reason)
                else:
                    log.error("reaper_failed", error=type(exc).__name__, exc_info=exc)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="onair-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        async with self._db.write() as conn:
            await leases.release(conn, LEASE, self.holder, self._clock.now())
