"""The hub's plain counters behind /metrics: joins, refusals by reason, limit hits by limit,
deliveries, writes, slow consumers and the flush-duration tally (issue 11 §1)."""

from __future__ import annotations

from onair.realtime.limits import RealtimeLimits
from tests.realtime.realtime_fakes import Harness


def test_limits_and_refusals_are_counted_by_name() -> None:
    h = Harness(limits=RealtimeLimits(max_channels_per_connection=2, max_messages_per_second=5,
                                      max_payload_bytes=200))
    c, _ = h.connect()
    for i in range(3):
        h.join(c, f"realtime:r{i}", ref=str(i + 1), broadcast={"ack": True})
    other, _ = h.connect("u2:buyer")
    h.push(other, ["9", "9", "realtime:bad", "phx_join", {"config": {}, "access_token": "bad"}])
    h.send(c, "realtime:r0", "broadcast", {"event": "e", "payload": {"pad": "x" * 300}}, ref="7")
    for _ in range(2):
        h.send(c, "realtime:r1", "broadcast", {"event": "e", "payload": {}})
    stats = h.hub.stats
    assert stats.joins == 2
    assert stats.joins_refused == {"too_many_channels": 1, "invalid_token": 1}
    assert stats.limit_hits == {"channels_per_connection": 1, "payload_bytes": 1,
                                "messages_per_second": 1}


def test_fan_out_is_counted_per_flush() -> None:
    h = Harness()
    clients = [h.connect(f"u{i}:buyer") for i in range(3)]
    for client, _ in clients:
        h.join(client, "realtime:room", broadcast={})
    h.hub.broadcast("realtime:room", "e", {"n": 1})
    h.hub.broadcast("realtime:room", "e", {"n": 2})
    before = h.hub.stats.flush_seconds.count
    h.flush()
    stats = h.hub.stats
    assert stats.published == 2 and stats.deliveries == 6 and stats.writes == 3
    assert stats.flush_seconds.count == before + 1 and stats.flush_seconds.sum >= 0


def test_a_slow_consumer_is_counted() -> None:
    h = Harness()
    fast, _ = h.connect("a:buyer")
    slow, transport = h.connect("b:buyer", max_pending=1000)
    for client in (fast, slow):
        h.join(client, "realtime:room", broadcast={})
    h.flush()
    transport.stuck = True
    transport.high_water = 0
    for i in range(20):
        h.hub.broadcast("realtime:room", "e", {"pad": "x" * 100, "i": i})
        h.flush()
    assert h.hub.stats.slow_consumers == 1
