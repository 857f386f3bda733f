"""Copies the services' plain counters into the Prometheus families, at scrape time.

The hot paths (hub fan-out, chat send, token issue) only add to ints and dicts of ints; here
their growth since the last copy is added to the matching Prometheus counter, gauges are set, and
plain histograms (``onair.tally.Tally``) add their bucket counts. The same code serves one process
(values in memory) and ``--workers`` (values in the multiprocess files), so it never depends on a
custom collector, which prometheus-client's multiprocess mode cannot aggregate.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Histogram

from onair.metrics.families import Metrics
from onair.tally import Tally

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Exporter:
    """Remembers what was copied already, per Prometheus child."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self._seen: dict[int, Any] = {}
        self._keep: list[Any] = []  # the children keyed by id() above stay alive

    def count(self, child: Counter, value: float) -> None:
        """Add the growth of a running count (a count that went down restarted from 0)."""
        key = id(child)
        last = self._seen.get(key)
        if last is None:
            self._keep.append(child)
            last = 0
        if value < last:
            last = 0
        if value > last:
            child.inc(value - last)
        self._seen[key] = value

    def count_each(self, family: Counter, counts: Mapping[str, int]) -> None:
        for label, value in list(counts.items()):
            self.count(family.labels(label), value)

    def tally(self, child: Histogram, tally: Tally) -> None:
        """Add a plain histogram's new observations. prometheus-client has no public call to add
        a bucket count, so this uses the child's bucket values (``_buckets``, ``_sum``), the same
        objects ``observe`` updates; tests/unit/test_metrics_export.py pins the behaviour."""
        key = id(child)
        last = self._seen.get(key)
        if last is None:
            self._keep.append(child)
            last = ([0] * len(tally.counts), 0.0)
        counts, total = list(tally.counts), tally.sum
        buckets = child._buckets
        assert len(buckets) == len(counts), "tally bounds must match the histogram's buckets"
        for i, (now, before) in enumerate(zip(counts, last[0], strict=True)):
            if now > before:
                buckets[i].inc(now - before)
        if total > last[1]:
            child._sum.inc(total - last[1])
        self._seen[key] = (counts, total)


def sync(exporter: Exporter, ctx: Any) -> None:
    """Every plain counter and in-process gauge of ``ctx`` (no I/O, a few ms at most)."""
    m = exporter.m
    _http(exporter)
    m.workers.set(1)
    m.resident.set(_resident_bytes())
    realtime = getattr(ctx, "realtime", None)
    if realtime is not None:
        _realtime(exporter, realtime)
    reactions = getattr(ctx, "reactions", None)
    if reactions is not None:
        _reactions(exporter, reactions)
    _chat(exporter, ctx.chat)
    _tokens(exporter, ctx.tokens, ctx.streams)
    _database(exporter, ctx.db)
    _broker(exporter, ctx)
    _reaper(exporter, ctx.reaper)
    _cache(exporter, ctx.streams.cache)
    _playback(exporter, ctx.telemetry)


def _http(e: Exporter) -> None:
    m = e.m
    for (method, route, status), count in list(m.http_counts.items()):
        e.count(m.requests.labels(method, route, str(status)), count)
    for (method, route), tally in list(m.http_latency.items()):
        e.tally(m.latency.labels(method, route), tally)
    e.count_each(m.errors, m.http_errors)


def _realtime(e: Exporter, service: Any) -> None:
    m, hub = e.m, service.hub
    stats = hub.stats
    by_vsn = [0, 0]
    pending = backlogged = 0
    for client in list(hub.clients):
        by_vsn[client.vsn_index] += 1
        if not client.direct:
            backlogged += 1
            pending += client.pending_bytes
    m.rt_connections.labels("1.0.0").set(by_vsn[0])
    m.rt_connections.labels("2.0.0").set(by_vsn[1])
    m.rt_pending.set(pending)
    m.rt_backlogged.set(backlogged)
    m.rt_topics.set(len(hub.topics))
    m.rt_channels.set(sum(len(topic.members) for topic in list(hub.topics.values())))
    e.count(m.rt_joins, stats.joins)
    e.count_each(m.rt_refused, stats.joins_refused)
    e.count_each(m.rt_limits, stats.limit_hits)
    e.count(m.rt_published, stats.published)
    e.count(m.rt_deliveries, stats.deliveries)
    e.count(m.rt_writes, stats.writes)
    e.count(m.rt_slow, stats.slow_consumers)
    e.tally(m.rt_flush, stats.flush_seconds)
    e.tally(m.rt_lag, stats.delivery_lag)
    e.count(m.broker_failures.labels("relay"), getattr(service, "relay_failures", 0))
    order = service.events.chat_order
    if order is not None:
        e.count(m.reorder_held, order.held)
        e.count(m.reorder_gaps, order.gaps_given_up)


def _reactions(e: Exporter, reactions: Any) -> None:
    e.count_each(e.m.reaction_taps, reactions.outcomes)
    e.count(e.m.reaction_aggregates, reactions.aggregates)
    e.count(e.m.reaction_partials, reactions.partials_received)
    e.count(e.m.broker_failures.labels("reactions"), reactions.publish_failures)


def _writer(e: Exporter, name: str, writer: Any) -> None:
    m = e.m
    e.tally(m.batch_size.labels(name), writer.batch_sizes)
    e.tally(m.commit_seconds.labels(name), writer.commit_seconds)
    m.queue_depth.labels(name).set(writer.waiting)


def _chat(e: Exporter, chat: Any) -> None:
    e.count_each(e.m.chat_sends, chat.send_outcomes)
    e.count(e.m.chat_commit_failures, chat.commit_failures)
    _writer(e, "chat", chat.writer)


def _tokens(e: Exporter, tokens: Any, streams: Any) -> None:
    m = e.m
    e.count_each(m.tokens_issued, tokens.issued)
    e.count_each(m.tokens_refused, tokens.refused)
    e.count_each(m.tokens_revoked, tokens.revoked)
    e.count(m.tokens_revoked.labels("stream_ended"), streams.tokens_revoked)
    _writer(e, "tokens", tokens.issuer)


def _database(e: Exporter, db: Any) -> None:
    m = e.m
    for pool, in_use in db.pools_in_use().items():
        m.db_in_use.labels(pool).set(in_use)
    for pool, capacity in db.capacity.items():
        m.db_capacity.labels(pool).set(capacity)
    e.count_each(m.db_errors, db.errors)


def _broker(e: Exporter, ctx: Any) -> None:
    m, broker, events = e.m, ctx.broker, ctx.events
    m.broker_up.set(1 if getattr(broker, "available", not getattr(broker, "_closed", False)) else 0)
    e.count(m.broker_published, events.published)
    e.count(m.broker_failures.labels("events"), events.failed)
    e.count(m.broker_link_failures, getattr(broker, "links_failed", 0))
    e.count(m.broker_reconnects, max(0, getattr(broker, "connects", 0) - 1))


def _reaper(e: Exporter, reaper: Any) -> None:
    m = e.m
    if reaper.last_success is not None:
        m.reaper_last.set(reaper.last_success)
    e.count(m.reaper_passes.labels("done"), reaper.passes)
    e.count(m.reaper_passes.labels("not_leader"), reaper.not_leader)
    e.count(m.reaper_passes.labels("failed"), reaper.failures)
    e.count_each(m.reaper_actions, reaper.actions)


def _cache(e: Exporter, cache: Any) -> None:
    m = e.m
    for (name, result), count in cache.lookups().items():
        e.count(m.cache_lookups.labels(name, result), count)
    e.count_each(m.cache_invalidations, cache.invalidations)
    e.count(m.broker_failures.labels("cache"), cache.publish_failures)
    for name, size in cache.sizes().items():
        m.cache_entries.labels(name).set(size)
def _playback(e: Exporter, telemetry: Any) -> None:
    m, tally = e.m, telemetry.tally
    e.count_each(m.pb_reports, telemetry.outcomes)
    for family, counts in ((m.pb_sessions, tally.sessions), (m.pb_problems, tally.problems),
                           (m.pb_reconnects, tally.reconnects), (m.pb_failures, tally.failures),
                           (m.pb_layers, tally.layers)):
        for labels, value in counts.items():
            e.count(family.labels(*labels), value)
    for histograms, tallies in ((m.pb_first_frame, tally.first_frame), (m.pb_stalls, tally.stalls),
                                (m.pb_rtt, tally.rtt)):
        for page, histogram in tallies.items():
            e.tally(histograms.labels(page), histogram)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
