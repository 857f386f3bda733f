"""The reaction service of several processes over one broker (the real in-memory broker, a bus
shared by three brokers as three processes would share Redis).

Property (issue 14, counts conserved across processes): whatever the taps on whichever process
and the order the processes close their windows, every process delivers every accepted tap to
its viewers exactly once — its own partials once, the others' once (its own echo through the
broker is not counted again).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onair.broker.memory import MemoryBroker, MemoryBus
from onair.domain.reactions import KINDS, total
from onair.services.reactions import ReactionService

PROCESSES = 3
STREAMS = ("a", "b")


class Timers:
    """call_later that only records: the test decides when each window closes."""

    def __init__(self) -> None:
        self.due: list[Any] = []

    def call_later(self, _delay: float, callback: Any) -> object:
        self.due.append(callback)
        return callback


async def scenario(steps: list[tuple[str, int, str, str]]) -> None:
    bus = MemoryBus()
    timers = [Timers() for _ in range(PROCESSES)]
    services, delivered = [], [list[tuple[str, dict[str, int]]]() for _ in range(PROCESSES)]
    for i in range(PROCESSES):
        broker = MemoryBroker(bus)
        service = ReactionService(f"n{i}", broker=broker, rate=1000, burst=1000, call_later=timers[i].call_later)
        service.deliver = lambda stream, payload, i=i: delivered[i].append((stream, payload["counts"]))
        await broker.start(service)
        for stream in STREAMS:
            await broker.subscribe(f"stream:{stream}")
        services.append(service)
    accepted: dict[str, dict[str, int]] = {s: {} for s in STREAMS}

    async def close(i: int) -> None:
        due, timers[i].due = timers[i].due, []
        for callback in due:
            callback()
        for _ in range(3):
            await asyncio.sleep(0)  # the publisher task hands the partials to the broker

    for op, i, stream, kind in steps:
        if op == "tap":
            assert services[i].tap(f"user{i}", stream, kind) is None
            accepted[stream][kind] = accepted[stream].get(kind, 0) + 1
        else:
            await close(i)
    for _ in range(3):  # own windows, then the partials that arrived meanwhile
        for i in range(PROCESSES):
            await close(i)
    for i, service in enumerate(services):
        for stream in STREAMS:
            assert total(c for s, c in delivered[i] if s == stream) == accepted[stream], (i, stream)
        assert service.combiner.duplicates == 0
        await service.stop()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["tap", "tap", "close"]), st.integers(0, PROCESSES - 1),
                          st.sampled_from(STREAMS), st.sampled_from(KINDS)), max_size=60))
def test_every_process_delivers_every_tap_once(steps: list[tuple[str, int, str, str]]) -> None:
    asyncio.run(scenario(steps))


def test_malformed_and_foreign_broker_messages_are_ignored() -> None:
    service = ReactionService("n0")
    for data in [b"not json", b'{"kind":"reactions_partial"}', b'["reactions_partial"]',
                 b'{"kind":"reactions_partial","node":"x","seq":1,"counts":{"heart":"9"}}',
                 b'{"kind":"row","table":"chat_messages"}']:
        service.on_message("stream:a", data)
    service.on_message("realtime:stream:a", b'{"kind":"reactions_partial","node":"x","seq":1,"counts":{"heart":1}}')
    assert service.combiner.pending == {} and service.partials_received == 0
