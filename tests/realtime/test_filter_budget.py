"""Issue 10 finding 1, the amplifier: every binding of every channel of a socket is evaluated for
each row, so the filters one socket holds share one cost budget (``Filter.cost``)."""

from __future__ import annotations

from typing import Any

from onair.realtime.limits import RealtimeLimits
from onair.realtime.protocol.filters import FilterLimits, parse_filter
from tests.realtime.realtime_fakes import Harness


def binding(flt: str) -> dict[str, Any]:
    return {"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.s1,{flt}"}


def systems(msgs: list[Any]) -> list[tuple[str, str]]:
    return [(m[4]["status"], m[4]["message"]) for m in msgs if m[3] == "system"]


def test_filter_cost_counts_patterns_lists_and_conditions() -> None:
    assert parse_filter("a=eq.1,b=neq.2").cost == 2
    assert parse_filter("a=in.(1,2,3)").cost == 3
    assert parse_filter("a=match.x").cost == 20  # the fixed cost of a call
    assert parse_filter("a=match..{40}x").cost > 200  # program size: cost per character


def test_filters_of_one_socket_share_a_budget_across_channels() -> None:
    h = Harness(limits=RealtimeLimits(filters=FilterLimits(max_cost_per_connection=50)))
    c, t = h.connect()
    pattern = binding("body=like.%a%")  # 1 + 20
    h.join(c, "realtime:a", postgres_changes=[pattern])
    h.join(c, "realtime:b", "2", postgres_changes=[binding("body=like.%b%")])
    assert systems(t.take()) == [("ok", "Subscribed to PostgreSQL"), ("ok", "Subscribed to PostgreSQL")]
    h.join(c, "realtime:c", "3", postgres_changes=[binding("body=like.%c%"), binding("body=eq.x")])
    assert systems(t.take()) == [("error", "filters of this connection exceed their cost budget (50): simplify them or leave a channel"),
                                 ("ok", "Subscribed to PostgreSQL")]
    assert len(h.hub.changes) == 3
    h.join(c, "realtime:a", "4", postgres_changes=[binding("body=like.%d%")])  # a rejoin replaces: no double count
    assert systems(t.take()) == [("ok", "Subscribed to PostgreSQL")]
    h.push(c, [None, "5", "realtime:b", "phx_leave", {}])
    h.join(c, "realtime:d", "6", postgres_changes=[binding("body=like.%e%")])  # leaving frees the budget
    assert systems(t.take()) == [("ok", "Subscribed to PostgreSQL")]
    other, ot = h.connect("u2:buyer")  # the budget is per socket
    h.join(other, "realtime:a", postgres_changes=[binding("body=like.%f%"), binding("body=like.%g%")])
    assert systems(ot.take()) == [("ok", "Subscribed to PostgreSQL")]
