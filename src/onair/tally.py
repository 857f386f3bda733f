"""A histogram of plain ints for hot code: no locks, no library, exported at scrape time.

The hub's flush loop and the group commits observe durations and sizes here (one bisect and two
additions); ``onair.metrics`` copies the counts into Prometheus histograms when it is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Tally:
    """``counts[i]`` observations fell in ``(bounds[i-1], bounds[i]]``; the last slot is +Inf
    (Prometheus' ``le`` buckets, not yet cumulative)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


def bump(counts: dict[str, int], key: str, by: int = 1) -> None:
    """Count ``key`` in a plain dict of counters (labels of a Prometheus counter at scrape)."""
    counts[key] = counts.get(key, 0) + by
