"""Prometheus metrics: the families (``families.py``), the scrape-time copy of the services'
plain counters (``export.py``) and the multi-worker merge (``multiprocess.py``).

prometheus-client is imported on first use, not here: the ``--workers`` supervisor needs only
``multiprocess`` and stays small."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from onair.metrics import multiprocess

if TYPE_CHECKING:
    from onair.metrics.families import Metrics

__all__ = ["Metrics", "render", "start_sync", "stop_sync", "sync"]
log = logging.getLogger("onair.metrics")
_TASK = "onair.metrics.sync"


def __getattr__(name: str) -> Any:
    if name == "Metrics":
        from onair.metrics.families import Metrics

        return Metrics
    raise AttributeError(name)


def sync(ctx: Any) -> None:
    """Copy the plain counters of ``ctx`` into ``ctx.metrics``."""
    from onair.metrics.export import Exporter
    from onair.metrics.export import sync as export

    metrics = ctx.metrics
    exporter = getattr(metrics, "exporter", None)
    if exporter is None:
        exporter = metrics.exporter = Exporter(metrics)
    export(exporter, ctx)


def render(metrics: Metrics) -> bytes:
    """This process' metrics, or every worker's when there are several."""
    from prometheus_client import generate_latest

    path = multiprocess.directory()
    if path is not None:
        return multiprocess.render_all(path)
    return generate_latest(metrics.registry)


def start_sync(ctx: Any, interval: float) -> None:
    """With several workers, copy this one's counters to the shared files every ``interval``
    seconds, so a scrape answered by another worker sees them too."""
    if multiprocess.directory() is None:
        return

    async def loop() -> None:
        while True:
            try:
                sync(ctx)
            except Exception:  # a bug here must not stop the next sync
                log.exception("metrics sync failed")
            await asyncio.sleep(interval)

    ctx.extras[_TASK] = asyncio.get_running_loop().create_task(loop(), name=_TASK)


async def stop_sync(ctx: Any) -> None:
    task = ctx.extras.pop(_TASK, None)
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        sync(ctx)  # the last counts of this worker stay in the sums after it exits
