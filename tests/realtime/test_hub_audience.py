"""Property 8: Supabase Realtime Connection Management — the hub's fast path (issue 12 §4).

The hub precomputes per topic who gets what (a cached write order per serializer, the members a
batch skips sliced out and served apart). That must never change what anyone receives: every
member gets byte for byte what the general per-member path (``_write_selective`` over every
member) would give it, whatever mix of senders without ``self``, recipient lists, partial read
rights, serializers, paused transports and membership changes between flushes. And the write
order rotates so no member is systematically last (issue 12 §1, fairness).
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onair.realtime.client import Client
from onair.realtime.hub import Hub
from onair.realtime.protocol.connection import ConnectionProtocol
from onair.realtime.protocol.join import JoinConfig
from onair.realtime.protocol.serializer import SERIALIZERS
from tests.realtime.realtime_fakes import FakeTransport

TOPIC = "realtime:room"


class GeneralHub(Hub):
    """The reference: every batch takes the per-member path over the live member dict (no cached order)."""

    def _skipped(self, group: dict[Client, None], selective: list[Any]) -> set[Client] | None:
        return None


class AlwaysFastHub(Hub):
    """The other extreme: slice out skipped members however many there are."""

    exceptions_share = 1


HUBS = (GeneralHub, Hub, AlwaysFastHub)

member_spec = st.tuples(
    st.sampled_from(["1.0.0", "2.0.0"]),  # serializer
    st.booleans(),  # broadcast self
    st.sampled_from([(True, True), (True, True), (True, False), (False, True)]),  # reads broadcast/presence
)
publication = st.one_of(
    st.tuples(st.just("broadcast"), st.none() | st.integers(0, 39), st.none() | st.sets(st.integers(0, 39))),
    st.tuples(st.just("notify"), st.none(), st.none()),
)
step = st.one_of(
    st.tuples(st.just("publish"), st.lists(publication, min_size=1, max_size=4)),
    st.tuples(st.just("leave"), st.integers(0, 39)),
    st.tuples(st.just("rejoin"), st.integers(0, 39)),
    st.tuples(st.just("pause"), st.integers(0, 39)),
    st.tuples(st.just("resume"), st.integers(0, 39)),
)


class World:
    def __init__(self, hub_cls: type[Hub], specs: list[tuple[str, bool, tuple[bool, bool]]]) -> None:
        self.hub = hub_cls(lambda flush: None)
        self.specs = specs
        self.clients: list[Client] = []
        self.transports: list[FakeTransport] = []
        for vsn, _, _ in specs:
            transport = FakeTransport()
            client = Client(ConnectionProtocol(SERIALIZERS[vsn], 0.0), transport, None, 1 << 30, self.hub.overflow)
            transport.client = client
            self.hub.connect(client)
            self.clients.append(client)
            self.transports.append(transport)
        for i in range(len(specs)):
            self.join(i)

    def join(self, i: int) -> None:
        _, self_, (reads_b, reads_p) = self.specs[i]
        self.hub.join(self.clients[i], TOPIC, "1", JoinConfig(broadcast_self=self_),
                      reads_broadcast=reads_b, reads_presence=reads_p)

    def run(self, action: tuple[Any, ...]) -> None:
        kind, arg = action
        n = len(self.clients)
        if kind == "publish":
            for seq, (what, sender, recipients) in enumerate(arg):
                if what == "notify":
                    self.hub.notify(TOPIC, "ok", f"note {seq}")
                    continue
                self.hub.broadcast(
                    TOPIC, "m", {"seq": seq}, sender=None if sender is None else self.clients[sender % n],
                    recipients=None if recipients is None else {self.clients[r % n] for r in recipients})
            self.hub.flush()
        elif kind == "leave":
            self.hub.leave(self.clients[arg % n], TOPIC)
        elif kind == "rejoin":
            self.join(arg % n)
        elif kind == "pause":
            self.clients[arg % n].pause_writing()
        else:
            self.clients[arg % n].resume_writing()

    def received(self) -> list[bytes]:
        for c in self.clients:
            c.resume_writing()
        return [bytes(t.data) for t in self.transports]


@settings(max_examples=150, deadline=None)
@given(specs=st.lists(member_spec, min_size=1, max_size=40), steps=st.lists(step, max_size=25))
def test_fast_path_delivers_what_the_general_path_does(specs: list[Any], steps: list[Any]) -> None:
    """Property 8: every member receives exactly the bytes the general path would send it."""
    worlds = [World(cls, specs) for cls in HUBS]
    for action in steps:
        for world in worlds:
            world.run(action)
    reference, *others = [w.received() for w in worlds]
    for other in others:
        assert other == reference


def write_order(n: int, flushes: int, sender: int | None = None) -> list[list[int]]:
    hub = Hub(lambda flush: None)
    order: list[int] = []
    clients = []
    for i in range(n):
        transport = FakeTransport()
        transport.observer = lambda data, i=i: order.append(i)  # type: ignore[misc]
        client = Client(ConnectionProtocol(SERIALIZERS["2.0.0"], 0.0), transport, None, 1 << 30, hub.overflow)
        transport.client = client
        hub.connect(client)
        hub.join(client, TOPIC, "1", JoinConfig())
        clients.append(client)
    rounds = []
    for _ in range(flushes):
        order.clear()
        hub.broadcast(TOPIC, "m", {}, sender=None if sender is None else clients[sender])
        hub.flush()
        rounds.append(list(order))
    return rounds


def test_write_order_rotates_so_nobody_is_always_last() -> None:
    """Over many flushes every member is written last some of the time, and each member's mean
    position is the middle of the order (no one is systematically slowest)."""
    n, flushes = 9, 300
    rounds = write_order(n, flushes)
    assert all(sorted(r) == list(range(n)) for r in rounds)  # each flush writes everyone once
    last = {r[-1] for r in rounds}
    assert last == set(range(n))
    for member in range(n):
        mean = sum(r.index(member) for r in rounds) / flushes
        assert abs(mean - (n - 1) / 2) < 0.5, (member, mean)
    # consecutive flushes do not start next to each other (a step of one would keep a member's
    # neighbours behind it for n flushes in a row)
    starts = [r[0] for r in rounds]
    assert sum(abs(a - b) in (1, n - 1) for a, b in itertools.pairwise(starts)) < flushes // 4


def test_rotation_holds_with_a_skipped_sender() -> None:
    """The fast path's sliced order (the sender without ``self`` taken out) rotates too."""
    n, flushes = 8, 240
    rounds = write_order(n, flushes, sender=3)
    assert all(sorted(r) == [i for i in range(n) if i != 3] for r in rounds)
    assert {r[-1] for r in rounds} == set(range(n)) - {3}
