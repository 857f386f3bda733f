"""Failure isolation in the hub (issue 12 §1): one member's broken write costs only that member,
an aborted fan-out is re-queued for the members it did not reach, no topic is left stalled, and
the write order rotates so nobody is always last."""

from __future__ import annotations

from typing import Any

import pytest

from onair.realtime import hub as hub_module
from onair.realtime.client import Client
from tests.realtime.realtime_fakes import FakeTransport, Harness

T = "realtime:room"
U = "realtime:other"


def broadcasts(transport: FakeTransport, topic: str = T) -> list[Any]:
    return [x[4]["payload"]["i"] for x in transport.take() if x[3] == "broadcast" and x[2] == topic]


def joined(h: Harness, n: int, topic: str = T, vsn: str = "2.0.0", **config: Any) -> list[tuple[Client, FakeTransport]]:
    subs = [h.connect(f"u{i}:buyer", vsn=vsn) for i in range(n)]
    for c, t in subs:
        h.join(c, topic, **config)
        t.take()
    return subs


def test_a_failed_write_costs_only_that_member() -> None:
    h = Harness()
    subs = joined(h, 6)
    broken_client, broken = subs[2]
    broken.fail_writes = -1
    h.hub.broadcast(T, "m", {"i": 1})
    h.flush()
    for c, t in subs:
        if c is not broken_client:
            assert broadcasts(t) == [1]
    assert broken.closed and broken_client not in h.hub.clients
    assert h.hub.member(broken_client, T) is None
    assert h.hub.stats.write_failures == 1
    # the topic is not stuck: the next message goes out to everyone left
    h.hub.broadcast(T, "m", {"i": 2})
    h.flush()
    for c, t in subs:
        if c is not broken_client:
            assert broadcasts(t) == [2]


def test_a_failed_write_in_the_selective_and_partial_paths_is_isolated() -> None:
    class HalfReader:
        async def prepare(self, principal: Any, topic: str) -> None:
            return None

        def allowed(self, principal: Any, topic: str, extension: str, action: str, *,
                    private: bool = False, event: str | None = None) -> bool:
            return not private or extension == "broadcast" or principal.user_id == "u0"

    h = Harness(authorizer=HalfReader())
    subs = joined(h, 5, private=True)  # u0 reads everything, the others broadcast only: partial
    subs += joined(h, 3)  # public: full readers, written by the selective loop (sender excluded)
    sender, _ = subs[0]
    for broken in (1, 3, 6):
        subs[broken][1].fail_writes = -1
    h.send(sender, T, "broadcast", {"type": "broadcast", "event": "m", "payload": {"i": 7}})
    h.flush()
    for i in (2, 4, 5, 7):
        assert broadcasts(subs[i][1]) == [7]
    assert all(subs[i][1].closed for i in (1, 3, 6))
    assert h.hub.stats.write_failures == 3


def test_a_failed_direct_send_closes_the_client_instead_of_raising() -> None:
    h = Harness()
    (c, t), (_, ot) = joined(h, 2, broadcast={"ack": True})  # the ack is a direct send
    t.fail_writes = -1
    h.send(c, T, "broadcast", {"type": "broadcast", "event": "m", "payload": {"i": 1}}, ref="5")
    h.flush()
    assert t.closed and c not in h.hub.clients
    assert broadcasts(ot) == [1]


def test_a_client_whose_close_raises_too_does_not_stop_the_others_being_cut_off() -> None:
    h = Harness()
    subs = joined(h, 4)
    for _, t in subs[:2]:
        t.fail_writes = -1

        def close() -> None:
            raise RuntimeError("the handler is closed")

        t.close = close  # type: ignore[method-assign]
    h.hub.broadcast(T, "m", {"i": 1})
    h.flush()
    assert all(c not in h.hub.clients for c, _ in subs[:2])
    assert [len(h.hub.members_of(T))] == [2]
    assert [broadcasts(t) for _, t in subs[2:]] == [[1], [1]]


def test_a_failure_in_one_topic_leaves_no_other_topic_stalled() -> None:
    h = Harness()
    a = joined(h, 3, T)
    b = joined(h, 3, U)
    a[0][1].fail_writes = 1
    h.hub.broadcast(T, "m", {"i": 1})
    h.hub.broadcast(U, "m", {"i": 1})
    h.flush()
    assert [broadcasts(t, U) for _, t in b] == [[1]] * 3
    h.hub.broadcast(U, "m", {"i": 2})  # U had a pending list: is it still scheduled?
    h.flush()
    assert [broadcasts(t, U) for _, t in b] == [[2]] * 3
    assert [broadcasts(t) for _, t in a[1:]] == [[1]] * 2


def test_an_aborted_fan_out_is_requeued_for_the_members_it_did_not_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    v1 = joined(h, 3, vsn="1.0.0")
    v2 = joined(h, 3, vsn="2.0.0")
    original = hub_module._Item.frame
    faults = [1]

    def faulty(self: Any, vsn: int) -> Any:
        if vsn == 1 and faults:
            faults.pop()
            raise RuntimeError("a bug outside the member writes")
        return original(self, vsn)

    monkeypatch.setattr(hub_module._Item, "frame", faulty)
    h.hub.broadcast(T, "m", {"i": 1})
    h.hub.broadcast(T, "m", {"i": 2})
    h.flush()  # the v1 group got the batch; the v2 group's fan-out aborted and was re-queued
    assert h.hub.stats.aborted_flushes == 1
    for _, t in v1:
        assert [x["payload"]["payload"]["i"] for x in t.take() if x["event"] == "broadcast"] == [1, 2]
    for _, t in v2:
        assert broadcasts(t) == [1, 2]
    h.hub.broadcast(T, "m", {"i": 3})
    h.flush()
    for _, t in v1:
        assert [x["payload"]["payload"]["i"] for x in t.take() if x["event"] == "broadcast"] == [3]
    for _, t in v2:
        assert broadcasts(t) == [3]


def test_a_batch_that_aborts_twice_is_dropped_and_the_topic_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    subs = joined(h, 3)
    original = hub_module._Item.frame
    broken = [True]

    def faulty(self: Any, vsn: int) -> Any:
        if broken[0]:
            raise RuntimeError("a persistent bug")
        return original(self, vsn)

    monkeypatch.setattr(hub_module._Item, "frame", faulty)
    h.hub.broadcast(T, "m", {"i": 1})
    h.flush()  # aborts, re-queued, aborts again: dropped (no busy loop)
    assert h.hub.stats.aborted_flushes == 2 and not h.flushes
    broken[0] = False
    h.hub.broadcast(T, "m", {"i": 2})
    h.flush()
    assert [broadcasts(t) for _, t in subs] == [[2]] * 3


def write_order(h: Harness, subs: list[tuple[Client, FakeTransport]], rounds: int) -> list[list[int]]:
    log: list[int] = []
    for c, t in subs:
        t.observer = lambda data, cid=c.id: log.append(cid)
    orders = []
    for i in range(rounds):
        h.hub.broadcast(T, "m", {"i": i})
        h.flush()
        orders.append(log[:])
        log.clear()
    return orders


def test_the_write_order_rotates_so_nobody_is_always_last() -> None:
    h = Harness()
    n = 5
    subs = joined(h, n)
    orders = write_order(h, subs, n)
    assert all(sorted(order) == sorted(c.id for c, _ in subs) for order in orders)
    assert len({order[0] for order in orders}) == n  # each member went first once in n flushes
    assert len({order[-1] for order in orders}) == n  # ... and last once
    base = orders[0]
    for order in orders:  # the same cycle, started elsewhere: no member overtakes another twice
        k = base.index(order[0])
        assert order == base[k:] + base[:k]


def test_the_selective_path_rotates_too() -> None:
    h = Harness()
    subs = joined(h, 4, broadcast={"self": False})
    sender, _ = subs[0]
    log: list[int] = []
    for c, t in subs:
        t.observer = lambda data, cid=c.id: log.append(cid)
    firsts = set()
    for i in range(3):
        h.send(sender, T, "broadcast", {"type": "broadcast", "event": "m", "payload": {"i": i}}, ref=str(10 + i))
        h.flush()
        firsts.add(log[0])
        assert sender.id not in log
        log.clear()
    assert len(firsts) == 3
