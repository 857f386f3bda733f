"""The telemetry rules (domain/playback.py) against anything a client can send."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.domain import playback
from onair.domain.playback import PlaybackTally, ReportRejected, parse_report
from onair.services.telemetry import TelemetryService
from onair.settings import Settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)
labels = st.sampled_from([*playback.PROBLEMS, *playback.LINKS, *playback.FAILURES,
                          *playback.LAYERS, "other-thing", "BLACK", ""])
events = st.fixed_dictionaries(
    {"kind": st.sampled_from([*playback.KINDS, "Start", "nope"])},
    optional={"seconds": st.floats(allow_nan=True) | st.integers() | st.booleans(),
              "problem": labels, "link": labels, "reason": labels, "layer": labels})
batches = st.fixed_dictionaries({"page": st.sampled_from([*playback.PAGES, "x"]),
                                 "events": st.lists(events | json_values, max_size=10)})


def sizes(tally: PlaybackTally) -> tuple[int, ...]:
    return (len(tally.sessions), len(tally.problems), len(tally.reconnects), len(tally.failures),
            len(tally.layers), len(tally.first_frame), len(tally.stalls), len(tally.rtt))


@given(st.lists(batches | json_values, max_size=8), st.integers(1, 8))
def test_any_body_is_counted_within_fixed_labels_or_refused(bodies: list[Any], cap: int) -> None:
    """Every body either parses into events of the fixed sets (at most ``cap``) or raises
    ReportRejected — never another exception — and the tally never grows a key."""
    tally = PlaybackTally()
    shape = sizes(tally)
    for body in bodies:
        try:
            report = parse_report(body, max_events=cap)
        except ReportRejected as err:
            assert err.loc[0] == "body"
            continue
        assert report.page in playback.PAGES and 1 <= len(report.events) <= cap
        for event in report.events:
            assert event.kind in playback.KINDS
            assert event.seconds is None or (math.isfinite(event.seconds)
                                             and 0 <= event.seconds <= playback.MAX_SECONDS)
        tally.add(report)
    assert sizes(tally) == shape
    assert set(tally.sessions) == {(p,) for p in playback.PAGES}


BUDGET_5 = Settings(_env_file=None, telemetry_max_reports_per_second=5.0)


@given(st.lists(st.sampled_from(["ok", "bad"]), max_size=30))
def test_service_outcomes_add_up(steps: list[str]) -> None:
    """Every recorded batch is counted under exactly one outcome, and no more than the process
    budget (5 at one instant) is ever parsed."""
    service = TelemetryService(BUDGET_5, now=lambda: 0.0)
    for step in steps:
        body = b'{"page":"watch","events":[{"kind":"start"}]}' if step != "bad" else b"{"
        try:
            service.record(body)
        except ReportRejected:
            pass
    assert sum(service.outcomes.values()) == len(steps)
    parsed = service.outcomes["accepted"] + service.outcomes["invalid"]
    assert parsed == min(5, len(steps))
    assert service.outcomes["accepted"] == steps[:5].count("ok")


def test_client_buckets_refill_with_time() -> None:
    now = [0.0]
    service = TelemetryService(Settings(_env_file=None, telemetry_rate_per_second=1.0,
                                        telemetry_rate_burst=2), now=lambda: now[0])

    async def run() -> list[float | None]:
        out = [await service.admit("ip:a") for _ in range(3)]
        out.append(await service.admit("ip:b"))
        now[0] = 1.0
        out.append(await service.admit("ip:a"))
        return out

    first, second, refused, other, later = asyncio.run(run())
    assert first is None and second is None and other is None and later is None
    assert refused == pytest.approx(1.0)
    assert service.outcomes["rate_limited"] == 1


def test_json_payload_of_the_browser_client_parses() -> None:
    """The shape client/telemetry.js sends (pages/playback_telemetry.js events)."""
    body = orjson.loads(b'{"page":"studio","events":[{"kind":"start"},'
                        b'{"kind":"media_failure","reason":"permission-denied"}]}')
    assert len(parse_report(body, max_events=64).events) == 2
