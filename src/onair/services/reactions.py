"""Reactions of one process: accepts taps, closes a window every ``window`` seconds, shares the
partial counts with the other processes and hands one ``reactions`` aggregate per stream and
window to the hub (issue 14; the counting rules are in ``domain/reactions.py``).

Taps arrive from the realtime socket (the dispatcher routes a ``react`` broadcast here instead
of fanning it out) and from REST; both are authorized by the caller with the stream policy, then
rate-limited per user here (excess taps are dropped silently and counted). With several processes
each one publishes its partials on the stream's broker topic (``stream:{id}``, which every process
with viewers of the stream subscribes to) and applies everyone's partials to its own combiner, so
each process delivers every tap once to its local viewers.

Reactions are ephemeral: nothing touches the database, and a process that stops loses at most
its open window. The window timer runs only while there is something to count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from onair.domain.reactions import (
    Aggregate,
    Combiner,
    Partial,
    TapLimiter,
    TapWindow,
    normalise_kind,
)
from onair.logs import log_failure
from onair.topics import ReactionsPartial, decode, encode, parse_stream_topic, stream_topic

log = logging.getLogger("onair.reactions")
EVENT = "reactions"  # the aggregate's broadcast event (server-only, see event_names.json)
TAP_EVENT = "react"  # what clients send (any casing: fold() is compared)
PARTIAL_MARKER = b'"reactions_partial"'
OUTCOMES = ("accepted", "rate_limited", "bad_kind", "overflow")

Deliver = Callable[[str, dict[str, Any]], None]  # (stream id, aggregate payload)


class ReactionService:
    def __init__(self, node_id: str, *, window: float = 0.25, rate: float = 5.0, burst: float = 10.0,
                 max_users: int = 100_000, max_streams: int = 10_000, broker: Any = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 call_later: Callable[[float, Callable[[], None]], Any] | None = None) -> None:
        self.node_id = node_id
        self.window = window
        self.limiter = TapLimiter(rate, burst, max_users)
        self.taps = TapWindow(node_id, max_streams)
        self.combiner = Combiner(max_streams)
        self.broker = broker  # set: partials are shared with the other processes through it
        self.deliver: Deliver | None = None
        self.monotonic = monotonic
        self.wall_clock = wall_clock
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)  # taps by outcome (metrics)
        self.aggregates = 0  # aggregates handed to the hub
        self.partials_received = 0  # other processes' partials applied
        self.publish_failures = 0
        self._call_later = call_later  # None: the running loop's (tests pass a virtual clock's)
        self._timer: Any = None
        self._outbox: asyncio.Queue[Partial] | None = None
        self._publisher: asyncio.Task[None] | None = None

    # -- taps ----------------------------------------------------------------------------------

    def tap(self, user: str, stream: str, kind: object) -> str | None:
        """Count one tap of ``user`` (already authorized for ``stream``). Returns None when the
        tap was taken (counted, or dropped by the rate limit, silently), else the reason it was
        refused (an unknown kind)."""
        name = normalise_kind(kind)
        if name is None:
            self.outcomes["bad_kind"] += 1
            return "unknown reaction kind"
        if not self.limiter.take(user, self.monotonic()):
            self.outcomes["rate_limited"] += 1
            return None
        if not self.taps.tap(stream, name):
            self.outcomes["overflow"] += 1
            return None
        self.outcomes["accepted"] += 1
        self._arm()
        return None

    # -- partials of other processes (broker consumer) -----------------------------------------

    def on_message(self, topic: str, data: bytes) -> None:
        """Broker handler (registered on the app's fan-in); never raises. Only partials matter
        here, so other events are skipped before parsing."""
        stream = parse_stream_topic(topic)
        if PARTIAL_MARKER not in data or stream is None:
            return
        try:
            event = decode(topic, data)
            if not isinstance(event, ReactionsPartial):
                return
            partial = Partial.checked(stream, event.node, event.seq, event.counts)
            if partial is None or partial.node == self.node_id:
                return  # own partials were applied when they were closed
            if self.combiner.add(partial):
                self.partials_received += 1
                self._arm()
        except Exception:
            log.exception("reactions: bad partial on %s", topic)

    # -- the window ------------------------------------------------------------------------------

    def tick(self) -> list[Aggregate]:
        """Close the window: own partials go to the combiner (and to the other processes), then
        every stream's sums leave as one aggregate."""
        for partial in self.taps.close():
            self.combiner.add(partial)
            if self.broker is not None:
                self._share(partial)
        return self.combiner.emit()

    def payload(self, aggregate: Aggregate) -> dict[str, Any]:
        return {"counts": dict(aggregate.counts), "total": aggregate.total,
                "window_ms": round(self.window * 1000), "at": round(self.wall_clock() * 1000)}

    def _arm(self) -> None:
        if self._timer is None:
            call_later = self._call_later or asyncio.get_running_loop().call_later
            self._timer = call_later(self.window, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            aggregates = self.tick()
            for aggregate in aggregates:
                self.aggregates += 1
                if self.deliver is not None:
                    self.deliver(aggregate.stream, self.payload(aggregate))
        except Exception:
            log.exception("reactions: closing a window failed")
            return
        if aggregates:
            self._arm()  # one more window: a timer that finds nothing stops

    def _share(self, partial: Partial) -> None:
        """Queue for the broker; one publisher keeps a stream's partials in order."""
        if self._outbox is None:
            self._outbox = asyncio.Queue(maxsize=10_000)
            self._publisher = asyncio.get_running_loop().create_task(self._publish_loop())
        try:
            self._outbox.put_nowait(partial)
        except asyncio.QueueFull:
            self.publish_failures += 1

    async def _publish_loop(self) -> None:
        assert self._outbox is not None
        while True:
            partial = await self._outbox.get()
            try:
                await self.broker.publish(stream_topic(partial.stream), encode(ReactionsPartial(partial.node, partial.seq, partial.counts)))
            except Exception as exc:  # noqa: BLE001 -- whatever the broker raised: counted, logged
                self.publish_failures += 1
                log_failure(log, "reactions: sharing a partial failed", exc=exc)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
