"""The in-process fixed window behind the per-user token limit (``domain/fixed_window.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.domain.fixed_window import FixedWindowCounter

LIMIT, SECONDS = 3, 10.0

hits = st.lists(st.tuples(st.integers(0, 5), st.floats(0, 6, allow_nan=False)), max_size=200)


@given(hits, st.integers(1, 8))
def test_decisions_follow_the_fixed_window_rule(steps: list[tuple[int, float]], max_tracked: int) -> None:
    """A key's window opens at its first hit after the last one closed and lasts SECONDS; a hit
    is allowed while it is one of the first LIMIT hits of its window; refused hits change no
    decision of another key; pruning (any max_tracked) changes no decision."""
    counter = FixedWindowCounter(LIMIT, SECONDS, max_tracked=max_tracked)
    windows: dict[str, list[float]] = {}  # key → hits of its current window (the first opens it)
    now = 0.0
    for user, step in steps:
        now += step
        key = f"u{user}"
        current = windows.get(key)
        if current is None or now >= current[0] + SECONDS:
            current = windows[key] = []
        current.append(now)
        hit = counter.hit(key, now)
        assert hit.allowed == (len(current) <= LIMIT)
        assert hit.resets_at == current[0] + SECONDS


@given(hits)
def test_no_key_gets_more_than_limit_in_any_window(steps: list[tuple[int, float]]) -> None:
    """Allowed hits of one key inside any window that a hit opened: at most LIMIT."""
    counter = FixedWindowCounter(LIMIT, SECONDS, max_tracked=2)
    allowed: dict[str, list[float]] = {}
    opened: dict[str, list[float]] = {}
    now = 0.0
    for user, step in steps:
        now += step
        key = f"u{user}"
        hit = counter.hit(key, now)
        if not opened.get(key) or opened[key][-1] != hit.resets_at - SECONDS:
            opened.setdefault(key, []).append(hit.resets_at - SECONDS)
        if hit.allowed:
            allowed.setdefault(key, []).append(now)
    for key, starts in opened.items():
        for start in starts:
            assert sum(start <= t < start + SECONDS for t in allowed.get(key, [])) <= LIMIT


def test_a_hit_costs_the_same_whatever_the_number_of_users() -> None:
    """O(1) amortized: 20,000 users in their windows, then 20,000 more hits; the entries all
    prunes looked at stay within a small multiple of the hits (the old storage looked at every
    user in a window after each hit: 20,000 × 20,000)."""
    counter = FixedWindowCounter(5, 60.0, max_tracked=1000)
    for user in range(20_000):
        counter.hit(f"u{user}", user * 0.001)
    for user in range(20_000):
        counter.hit(f"u{user}", 20.0 + user * 0.001)
    visited = counter._windows.visited
    assert visited <= 4 * 40_000
    counter.hit("late", 200.0)  # every window closed: the next prune keeps only the new one
    counter.hit("later", 261.0)
    assert len(counter) == 1


def test_a_window_needs_a_limit_and_a_length() -> None:
    with pytest.raises(ValueError):
        FixedWindowCounter(0, 1.0)
    with pytest.raises(ValueError):
        FixedWindowCounter(1, 0.0)
