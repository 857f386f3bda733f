"""Reaction aggregation (issue 14): counts are conserved and the aggregate rate is bounded.

Property (issue 14, "counts are conserved across windows and processes"): whatever the taps,
window closings, broker delivery order (in order per sender, interleaved across senders, with
redeliveries) and emit schedule of several processes, every process's aggregates add up to exactly
the taps all processes accepted — every accepted tap is in exactly one aggregate of each process.

Property (issue 14, "the aggregate rate per stream is bounded by the window whatever the input
rate"): the reaction service, driven on a virtual clock with taps at any rate, hands out at most
one aggregate per stream per window, each accepted tap within one window of its arrival.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onair.domain.reactions import (
    KINDS,
    Combiner,
    Partial,
    TapLimiter,
    TapWindow,
    normalise_kind,
    total,
)
from onair.services.reactions import ReactionService

STREAMS = ("s1", "s2", "s3")
NODES = 3

op = st.one_of(
    st.tuples(st.just("tap"), st.integers(0, NODES - 1), st.sampled_from(STREAMS), st.sampled_from(KINDS)),
    st.tuples(st.just("close"), st.integers(0, NODES - 1)),
    st.tuples(st.just("deliver"), st.integers(0, NODES - 1), st.integers(0, NODES - 1)),
    st.tuples(st.just("redeliver"), st.integers(0, NODES - 1)),
    st.tuples(st.just("emit"), st.integers(0, NODES - 1)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=150))
def test_counts_conserved_across_windows_and_processes(ops: list[tuple[Any, ...]]) -> None:
    """Property: every accepted tap appears in exactly one aggregate of every process."""
    windows = [TapWindow(f"n{i}") for i in range(NODES)]
    combiners = [Combiner() for _ in range(NODES)]
    # inbox[receiver][sender]: the broker keeps one sender's partials of a stream in order
    inbox: list[list[list[Partial]]] = [[[] for _ in range(NODES)] for _ in range(NODES)]
    delivered: list[list[Partial]] = [[] for _ in range(NODES)]
    emitted: list[list[Any]] = [[] for _ in range(NODES)]
    accepted: dict[str, dict[str, int]] = {s: {} for s in STREAMS}

    def close(node: int) -> None:
        for partial in windows[node].close():
            assert combiners[node].add(partial)
            for other in range(NODES):
                if other != node:
                    inbox[other][node].append(partial)

    def deliver(receiver: int, sender: int) -> None:
        if inbox[receiver][sender]:
            partial = inbox[receiver][sender].pop(0)
            assert combiners[receiver].add(partial)
            delivered[receiver].append(partial)

    def emit(node: int) -> None:
        out = combiners[node].emit()
        assert len({a.stream for a in out}) == len(out)  # at most one aggregate per stream
        emitted[node].extend(out)

    for o in ops:
        if o[0] == "tap":
            _, node, stream, kind = o
            assert windows[node].tap(stream, kind)
            accepted[stream][kind] = accepted[stream].get(kind, 0) + 1
        elif o[0] == "close":
            close(o[1])
        elif o[0] == "deliver":
            deliver(o[1], o[2])
        elif o[0] == "redeliver" and delivered[o[1]]:
            assert not combiners[o[1]].add(delivered[o[1]][-1])  # a duplicate is refused
        elif o[0] == "emit":
            emit(o[1])
    for node in range(NODES):
        close(node)
    for receiver, sender in itertools.product(range(NODES), range(NODES)):
        while inbox[receiver][sender]:
            deliver(receiver, sender)
    for node in range(NODES):
        emit(node)
        for stream in STREAMS:
            got = total(a.counts for a in emitted[node] if a.stream == stream)
            assert got == accepted[stream], (node, stream)


class VirtualClock:
    """call_later on a clock that moves only when told (no sleeping, no real timers)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._n = itertools.count()

    def call_later(self, delay: float, callback: Callable[[], None]) -> int:
        n = next(self._n)
        heapq.heappush(self._heap, (self.now + delay, n, callback))
        return n  # the handle

    def advance(self, to: float) -> None:
        while self._heap and self._heap[0][0] <= to:
            at, _, callback = heapq.heappop(self._heap)
            self.now = at
            callback()
        self.now = max(self.now, to)

    def pending(self) -> int:
        return len(self._heap)


taps = st.lists(st.tuples(
    st.floats(0, 0.6),  # gap since the previous tap: from a flood (0) to a trickle
    st.integers(0, 5),  # user
    st.sampled_from(STREAMS[:2]),
    st.sampled_from([*KINDS, "HEART", "Fire", "poop", ""]),
), max_size=300)


@settings(max_examples=200, deadline=None)
@given(taps, st.sampled_from([0.05, 0.25, 1.0]))
def test_aggregate_rate_bounded_by_the_window(schedule: list[tuple[float, int, str, str]], window: float) -> None:
    """Property: at most one aggregate per stream per window whatever the tap rate; each
    accepted tap is delivered within one window; outcomes add up to the taps sent."""
    clock = VirtualClock()
    service = ReactionService("n0", window=window, rate=5, burst=10, monotonic=lambda: clock.now,
                              call_later=clock.call_later)
    deliveries: list[tuple[float, str, dict[str, int]]] = []
    service.deliver = lambda stream, payload: deliveries.append((clock.now, stream, payload["counts"]))
    accepted_at: list[tuple[float, str, str]] = []
    at = 0.0
    for gap, user, stream, kind in schedule:
        at += gap
        clock.advance(at)
        before = service.outcomes["accepted"]
        refused = service.tap(f"u{user}", stream, kind)
        assert (refused is None) == (normalise_kind(kind) is not None)
        if service.outcomes["accepted"] > before:
            accepted_at.append((clock.now, stream, normalise_kind(kind) or ""))
        assert clock.pending() <= 1  # one window timer, however many taps
    clock.advance(at + 10 * window)
    assert clock.pending() == 0  # the timer stops when there is nothing to count
    assert sum(service.outcomes.values()) == len(schedule)
    for stream in STREAMS[:2]:
        times = [t for t, s, _ in deliveries if s == stream]
        assert all(b - a >= window - 1e-9 for a, b in itertools.pairwise(times))
        want: dict[str, int] = {}
        for _, s, kind in accepted_at:
            if s == stream:
                want[kind] = want.get(kind, 0) + 1
        assert total(c for _, s, c in deliveries if s == stream) == want
        # within one window: by each delivery, every tap older than a window was delivered
        for t, s, _ in deliveries:
            if s == stream:
                sent = sum(1 for ta, sa, _ in accepted_at if sa == stream and ta <= t - window - 1e-9)
                got = sum(sum(c.values()) for td, sd, c in deliveries if sd == stream and td <= t)
                assert got >= sent


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2), st.integers(0, 3)), max_size=200))
def test_rate_limit_bounds_each_user(schedule: list[tuple[float, int]]) -> None:
    """A user's accepted taps in any span of T seconds are at most burst + rate × T, and the
    limiter never holds more users than its bound."""
    limiter = TapLimiter(rate=5, burst=10, max_users=3)
    at, accepted = 0.0, list[tuple[float, int]]()
    for gap, user in schedule:
        at += gap
        if limiter.take(f"u{user}", at):
            accepted.append((at, user))
        assert len(limiter) <= 3
    for user in range(3):  # users 0-2 fit; evicting u3 may hand one a fresh burst: skip those
        times = [t for t, u in accepted if u == user]
        if any(u == 3 for _, u in accepted):
            continue
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                assert j - i + 1 <= 10 + 5 * (times[j] - start) + 1e-6


@given(st.text(max_size=20))
def test_kinds_normalise_by_ascii_casing_only(text: str) -> None:
    kind = normalise_kind(text)
    if kind is not None:
        assert kind in KINDS and text.lower() == kind and text.isascii()
    assert normalise_kind(text.upper() if text.isascii() else text) == kind or not text.isascii()


def test_malformed_partials_are_refused() -> None:
    good = {"kind": "reactions_partial", "node": "a", "seq": 1, "counts": {"heart": 2}}
    assert Partial.from_event("s", good) == Partial("s", "a", 1, {"heart": 2})
    for bad in ({**good, "seq": "1"}, {**good, "seq": True}, {**good, "counts": {"poop": 1}},
                {**good, "counts": {"heart": -1}}, {**good, "counts": []}, {**good, "node": 3},
                {**good, "counts": {"heart": 0}}):
        assert Partial.from_event("s", bad) is None
