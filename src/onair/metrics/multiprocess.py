"""``onair serve --workers N``: one scrape shows the whole server.

prometheus-client's multiprocess mode: the supervisor gives every worker one fresh directory
(``PROMETHEUS_MULTIPROC_DIR``, read by prometheus-client when it is imported), each worker's
metric values live in memory-mapped files there, and whichever worker answers ``/metrics`` merges
every file: counters and histograms summed over all workers (those of exited workers too, so they
never go backwards), gauges as their ``multiprocess_mode`` says (``livesum`` over running
workers, ...). The supervisor removes an exited worker's live gauges (``mark_process_dead``).
Values kept as plain ints (``export.py``) reach the files when a worker syncs them: at every
scrape it answers and every ``ONAIR_METRICS_SYNC_INTERVAL`` seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"


def directory() -> str | None:
    """The shared directory when this process is one of several workers."""
    return os.environ.get(ENV) or None


def fresh_directory() -> str:
    """For the supervisor: an empty directory for this run's workers."""
    return tempfile.mkdtemp(prefix="onair-metrics-")


def worker_exited(path: str, pid: int) -> None:
    """Drop the live gauges of a worker that is gone (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def render_all(path: str) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return generate_latest(registry)
