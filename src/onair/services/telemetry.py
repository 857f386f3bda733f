"""TelemetryService: admits, checks and counts the pages' playback reports.

Reports cost the server only bounded work whoever sends them, in the order the endpoint asks:
``admit`` (one token-bucket take per client, before the body is read), then ``record`` (a process
wide budget of batches per second, checked before parsing; the body is already capped in bytes;
``parse_report`` caps the events). Nothing is stored: accepted reports only add to the plain
counters of ``tally``, exported at scrape time as the ``onair_playback_*`` families.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from onair.broker.buckets import MemoryBuckets
from onair.domain.chat import TokenBucket
from onair.domain.playback import OUTCOMES, PlaybackTally, Report, ReportRejected, parse_report
from onair.settings import Settings
from onair.tally import bump


class TelemetryService:
    def __init__(self, settings: Settings, *, now: Callable[[], float] = time.monotonic) -> None:
        self.max_events = settings.telemetry_max_events
        self.max_body_bytes = settings.telemetry_max_body_bytes
        # In this process only: telemetry is advisory, a Redis round trip per report would cost
        # more than the report, and the global budget below bounds the total work anyway. The
        # settings are for the whole server: with `--workers N` each process takes 1/N of them
        # (the kernel spreads connections over the workers), so N workers do not admit N times
        # the configured work.
        share = 1 / max(1, settings.workers)
        self._clients = MemoryBuckets(
            TokenBucket(rate=settings.telemetry_rate_per_second * share,
                        burst=max(1, round(settings.telemetry_rate_burst * share))),
            settings.telemetry_rate_tracked_clients)
        rate = settings.telemetry_max_reports_per_second * share
        self._budget = TokenBucket(rate=rate, burst=max(1, int(rate)))
        self._budget_tat: float | None = None
        self._now = now
        self.tally = PlaybackTally()
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    async def admit(self, client: str) -> float | None:
        """None when ``client`` may send a batch now, else the seconds until it may."""
        take = await self._clients.take(client, self._now())
        if take.allowed:
            return None
        bump(self.outcomes, "rate_limited")
        return take.retry_after

    def refuse(self, outcome: str) -> None:
        """Count a batch the endpoint refused before ``record`` (too large, wrong type)."""
        bump(self.outcomes, outcome)

    def record(self, body: bytes) -> Report | None:
        """Count the report in ``body``; None when it was dropped because this process is over its
        budget of batches per second. Raises :class:`ReportRejected` for a bad report."""
        allowed, tat, _ = self._budget.take(self._budget_tat, self._now())
        if not allowed:
            bump(self.outcomes, "overloaded")
            return None
        self._budget_tat = tat
        try:
            report = parse_report(orjson.loads(body), max_events=self.max_events)
        except orjson.JSONDecodeError:
            bump(self.outcomes, "invalid")
            raise ReportRejected(("body",), "is not valid JSON") from None
        except ReportRejected:
            bump(self.outcomes, "invalid")
            raise
        self.tally.add(report)
        bump(self.outcomes, "accepted")
        return report

    async def close(self) -> None:
        await self._clients.close()
