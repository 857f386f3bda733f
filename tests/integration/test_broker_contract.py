"""The Broker contract, run against every implementation (memory, Redis).

A "node" is one broker instance with its own handler; nodes made by one ``nodes`` fixture share a
bus (MemoryBus or one Redis with a key prefix unique to the test), like onair processes in one
deployment. Redis is ``ONAIR_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); without it
the redis cases skip, unless ``ONAIR_REQUIRE_SERVICES=1`` makes them fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onair.broker.base import Broker, BrokerUnavailable
from onair.broker.memory import MemoryBroker, MemoryBus
from onair.broker.redis import RedisBroker

REDIS_URL = os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WAIT = 5.0  # seconds a delivery may take before the test fails


def redis_reachable(url: str) -> str | None:
    """None if Redis answers PING, else why not."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"Redis not reachable at {url}: {exc}"
    return None


def need_redis() -> None:
    reason = redis_reachable(REDIS_URL)
    if reason is None:
        return
    if os.environ.get("ONAIR_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (ONAIR_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


class Recorder:
    """A BrokerHandler that remembers what it got and lets a test wait for it."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def on_message(self, topic: str, data: bytes) -> None:
        self.got.append((topic, data))
        self._changed.set()

    def on(self, topic: str) -> list[bytes]:
        return [data for t, data in self.got if t == topic]

    async def wait_for(self, topic: str, data: bytes) -> None:
        """Until (topic, data) arrived; everything published before it on the same link has too."""
        async with asyncio.timeout(WAIT):
            while (topic, data) not in self.got:
                self._changed.clear()
                await self._changed.wait()

    async def wait_count(self, n: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.got) < n:
                self._changed.clear()
                await self._changed.wait()


Node = tuple[Broker, Recorder]
MakeNode = Callable[[], Awaitable[Node]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[MakeNode]:
    """``await nodes()`` starts one more node on this test's shared bus."""
    if request.param == "redis":
        need_redis()
    bus = MemoryBus()
    prefix = f"onair-test:{uuid.uuid4().hex}:"
    started: list[Broker] = []

    async def make() -> Node:
        broker: Broker = (
            MemoryBroker(bus)
            if request.param == "memory"
            else RedisBroker(REDIS_URL, key_prefix=prefix)
        )
        recorder = Recorder()
        await broker.start(recorder)
        started.append(broker)
        return broker, recorder

    yield make
    for broker in started:
        await broker.close()


async def test_ping_answers_while_connected(nodes: MakeNode) -> None:
    broker, _ = await nodes()
    await broker.ping()


async def test_delivers_in_publish_order(nodes: MakeNode) -> None:
    broker, got = await nodes()
    await broker.subscribe("stream:1")
    sequential = [f"s{i}".encode() for i in range(50)]
    for data in sequential:
        await broker.publish("stream:1", data)
    concurrent = [f"c{i}".encode() for i in range(500)]
    await asyncio.gather(*(broker.publish("stream:1", data) for data in concurrent))
    await got.wait_for("stream:1", concurrent[-1])
    assert got.on("stream:1") == sequential + concurrent


async def test_publish_many_keeps_order_among_single_publishes(nodes: MakeNode) -> None:
    broker, got = await nodes()
    other, got_other = await nodes()
    await broker.subscribe("stream:1")
    await other.subscribe("stream:1")
    expected: list[bytes] = []
    calls = []
    for round_ in range(20):
        many = [f"m{round_}.{i}".encode() for i in range(round_ % 7)]  # empty lists too
        single = f"s{round_}".encode()
        calls += [broker.publish_many("stream:1", many), broker.publish("stream:1", single)]
        expected += [*many, single]
    await asyncio.gather(*calls)
    await got.wait_for("stream:1", expected[-1])
    await got_other.wait_for("stream:1", expected[-1])
    assert got.on("stream:1") == expected and got_other.on("stream:1") == expected


async def test_topics_are_isolated(nodes: MakeNode) -> None:
    a, got_a = await nodes()
    b, got_b = await nodes()
    await a.subscribe("stream:a")
    await b.subscribe("stream:b")
    await a.publish("stream:b", b"for b")
    await a.publish("stream:a", b"for a")
    await a.publish("stream:c", b"for nobody")
    await a.publish("stream:a", b"a done")
    await a.publish("stream:b", b"b done")
    await got_a.wait_for("stream:a", b"a done")
    await got_b.wait_for("stream:b", b"b done")
    assert got_a.got == [("stream:a", b"for a"), ("stream:a", b"a done")]
    assert got_b.got == [("stream:b", b"for b"), ("stream:b", b"b done")]


async def test_unsubscribe_stops_delivery_at_once(nodes: MakeNode) -> None:
    broker, got = await nodes()
    await broker.subscribe("stream:1")
    await broker.subscribe("barrier")
    await broker.publish("stream:1", b"before")
    await got.wait_for("stream:1", b"before")
    await broker.unsubscribe("stream:1")
    await broker.publish("stream:1", b"after")
    await broker.publish("barrier", b"flushed")
    await got.wait_for("barrier", b"flushed")
    assert got.on("stream:1") == [b"before"]


async def test_subscribe_is_idempotent_without_reference_counting(nodes: MakeNode) -> None:
    broker, got = await nodes()
    await broker.subscribe("stream:1")
    await broker.subscribe("stream:1")
    await asyncio.gather(broker.subscribe("stream:2"), broker.subscribe("stream:2"))
    await broker.publish("stream:1", b"once")
    await broker.publish("stream:2", b"once too")
    await got.wait_for("stream:2", b"once too")
    assert got.got == [("stream:1", b"once"), ("stream:2", b"once too")]
    await broker.unsubscribe("stream:1")  # one unsubscribe undoes both subscribes
    await broker.unsubscribe("stream:1")
    await broker.unsubscribe("never-subscribed")
    await broker.publish("stream:1", b"dropped")
    await broker.publish("stream:2", b"barrier")
    await got.wait_for("stream:2", b"barrier")
    assert got.on("stream:1") == [b"once"]


async def test_resubscribe_after_unsubscribe(nodes: MakeNode) -> None:
    broker, got = await nodes()
    await broker.subscribe("stream:1")
    await broker.unsubscribe("stream:1")
    await broker.subscribe("stream:1")
    await broker.publish("stream:1", b"back")
    await got.wait_for("stream:1", b"back")
    assert got.on("stream:1") == [b"back"]


@pytest.mark.parametrize(
    "calls", [("s", "u", "s"), ("s", "u"), ("u", "s", "s", "u", "s"), ("s", "s", "u")]
)
async def test_concurrent_subscribe_unsubscribe_last_call_wins(
    nodes: MakeNode, calls: tuple[str, ...]
) -> None:
    broker, got = await nodes()
    await broker.subscribe("barrier")
    await asyncio.gather(
        *(broker.subscribe("t") if c == "s" else broker.unsubscribe("t") for c in calls)
    )
    await broker.publish("t", b"probe")
    await broker.publish("barrier", b"flushed")
    await got.wait_for("barrier", b"flushed")
    assert got.on("t") == ([b"probe"] if calls[-1] == "s" else [])


async def test_two_nodes_see_each_others_publishes(nodes: MakeNode) -> None:
    a, got_a = await nodes()
    b, got_b = await nodes()
    for broker in (a, b):
        await broker.subscribe("stream:1")
    from_a = [f"a{i}".encode() for i in range(100)]
    from_b = [f"b{i}".encode() for i in range(100)]
    await asyncio.gather(
        *(a.publish("stream:1", d) for d in from_a), *(b.publish("stream:1", d) for d in from_b)
    )
    for got in (got_a, got_b):
        await got.wait_count(200)
        received = got.on("stream:1")
        # each publisher's messages arrive in its order; the two streams may interleave
        assert [d for d in received if d.startswith(b"a")] == from_a
        assert [d for d in received if d.startswith(b"b")] == from_b


async def test_publisher_need_not_subscribe(nodes: MakeNode) -> None:
    a, got_a = await nodes()
    b, got_b = await nodes()
    await b.subscribe("stream:1")
    await a.publish("stream:1", b"hello")
    await got_b.wait_for("stream:1", b"hello")
    assert got_a.got == []


async def test_payloads_are_opaque_bytes(nodes: MakeNode) -> None:
    broker, got = await nodes()
    topic = "stream:ünïcode/🙂 *?[x]"  # glob characters must not act as patterns
    await broker.subscribe(topic)
    payloads = [bytes(range(256)), b"", b"\x00" * 10, b"{not json", os.urandom(1 << 20)]
    for data in payloads:
        await broker.publish(topic, data)
    await got.wait_count(len(payloads))
    assert got.on(topic) == payloads


async def test_handler_error_does_not_stop_delivery(nodes: MakeNode) -> None:
    broker, got = await nodes()
    record = got.on_message

    def flaky(topic: str, data: bytes) -> None:
        record(topic, data)
        if data == b"boom":
            raise RuntimeError("consumer bug")

    got.on_message = flaky  # type: ignore[method-assign]
    await broker.subscribe("stream:1")
    await broker.publish("stream:1", b"boom")
    await broker.publish("stream:1", b"still here")
    await got.wait_for("stream:1", b"still here")
    assert got.on("stream:1") == [b"boom", b"still here"]


async def test_closed_broker_refuses(nodes: MakeNode) -> None:
    broker, _ = await nodes()
    await broker.close()
    with pytest.raises(BrokerUnavailable):
        await broker.ping()
    with pytest.raises(BrokerUnavailable):
        await broker.publish("stream:1", b"x")
    with pytest.raises(BrokerUnavailable):
        await broker.publish_many("stream:1", [b"x", b"y"])


# --- property ----------------------------------------------------------------------------------

TOPICS = ["t0", "t1", "t2"]
operation = st.tuples(
    st.sampled_from(["subscribe", "unsubscribe", "publish"]),
    st.integers(0, 1),  # node
    st.sampled_from(TOPICS),
)


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(operation, max_size=30))
def test_delivery_follows_subscriptions(kind: str, ops: list[tuple[str, int, str]]) -> None:
    """Property 8 (broker part): a node receives, in publish order, every message published on
    a topic while it was subscribed to it and nothing published while it was not. The one
    latitude: a message still in flight when the node unsubscribes from its topic may be dropped
    (after ``unsubscribe`` returns nothing more is delivered for the topic).
    """
    if kind == "redis":
        need_redis()
    asyncio.run(_run_ops(kind, ops))


async def _run_ops(kind: str, ops: list[tuple[str, int, str]]) -> None:
    bus = MemoryBus()
    prefix = f"onair-test:{uuid.uuid4().hex}:"
    brokers: list[Broker] = [
        MemoryBroker(bus) if kind == "memory" else RedisBroker(REDIS_URL, key_prefix=prefix)
        for _ in range(2)
    ]
    recorders = [Recorder() for _ in brokers]
    subscribed: list[set[str]] = [set(), set()]
    expected: list[list[tuple[str, bytes]]] = [[], []]
    droppable: list[set[bytes]] = [set(), set()]  # in flight when their topic was unsubscribed
    try:
        for broker, recorder in zip(brokers, recorders, strict=True):
            await broker.start(recorder)
            await broker.subscribe("barrier")
        for i, (op, node, topic) in enumerate(ops):
            if op == "subscribe":
                await brokers[node].subscribe(topic)
                subscribed[node].add(topic)
            elif op == "unsubscribe":
                await brokers[node].unsubscribe(topic)
                subscribed[node].discard(topic)
                droppable[node].update(data for t, data in expected[node] if t == topic)
            else:
                data = str(i).encode()
                await brokers[node].publish(topic, data)
                for n in (0, 1):
                    if topic in subscribed[n]:
                        expected[n].append((topic, data))
        # one barrier per publisher: Redis orders per publishing connection
        for broker in brokers:
            await broker.publish("barrier", id(broker).to_bytes(8, "big"))
        for recorder in recorders:
            for broker in brokers:
                await recorder.wait_for("barrier", id(broker).to_bytes(8, "big"))
        for n in (0, 1):
            got = [m for m in recorders[n].got if m[0] != "barrier"]
            assert [m for m in expected[n] if m in got or m[1] not in droppable[n]] == got
    finally:
        for broker in brokers:
            await broker.close()
