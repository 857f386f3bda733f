"""Group commit: many concurrent requests share one database transaction (or one round trip).

A write transaction costs far more than one row in it (on SQLite one writer, one fsync-free
WAL commit, one thread hop per statement), so under load the requests queued while a batch
runs go into the next batch together. With one request in flight it is a plain transaction.
Each caller still gets its own result or exception, and only after the batch committed.
Chat sends and token issues batch their transactions this way, and the Redis rate-limit buckets
their round trips (a redis-py call costs far more CPU than the script it runs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from onair.tally import BATCH_SIZES, SECONDS, Tally

T = TypeVar("T")
R = TypeVar("R")

BatchRunner = Callable[[list[T]], Awaitable[list[R | Exception]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, run: BatchRunner[T, R], max_batch: int) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0
        self.batch_sizes = Tally(BATCH_SIZES)
        self.commit_seconds = Tally(SECONDS)

    @property
    def waiting(self) -> int:
        """Items submitted and not yet in a running batch (for back-pressure)."""
        return len(self._pending)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self.batches += 1
            self.items += len(batch)
            self.batch_sizes.observe(len(batch))
            started = time.perf_counter()
            try:
                results = await self._run([item for item, _ in batch])
                self.commit_seconds.observe(time.perf_counter() - started)
            except Exception as exc:  # the whole transaction failed: every caller hears it
                results = [exc] * len(batch)
            except BaseException:  # cancelled (shutdown): nobody may wait forever
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the caller went away; its row is committed regardless
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def close(self) -> None:
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)
