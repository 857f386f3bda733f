"""The PresenceStore contract, run against every implementation (memory, Redis).

A node is a process: its own node id, broker, broker handler and store; the nodes of one test share
a bus and a presence table (memory) or one Redis under a key prefix unique to the test. Redis is
``ONAIR_TEST_REDIS_URL``; the redis cases skip without it unless ``ONAIR_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onair.broker.base import Broker
from onair.broker.memory import MemoryBroker, MemoryBus
from onair.broker.presence_base import DIFF_KIND, PresenceState, PresenceStore
from onair.broker.presence_memory import MemoryPresenceStore, PresenceTable
from onair.broker.presence_redis import open_redis_presence
from onair.broker.redis import RedisBroker

REDIS_URL = os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TTL = 60.0  # presence_ttl (seconds): nothing expires unless a test wants it to
SHORT_TTL = 1.5  # for the expiry test; generous so a busy machine does not expire live nodes
WAIT = 5.0


def need_redis() -> None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("ONAIR_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (ONAIR_REQUIRE_SERVICES=1)")
        pytest.skip(reason)


class Diffs:
    """Broker handler keeping the presence diffs (and barriers) a node received."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def on_message(self, topic: str, data: bytes) -> None:
        self.got.append((topic, orjson.loads(data)))
        self._changed.set()

    def diffs(self, topic: str) -> list[dict[str, Any]]:
        return [m for t, m in self.got if t == topic and m.get("kind") == DIFF_KIND]

    async def wait_until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    async def barrier(self, nodes: list[Node], topic: str) -> None:
        """Wait until every node's publishes so far on ``topic`` have arrived here."""
        marks = []
        for node in nodes:
            mark = {"kind": "barrier", "id": uuid.uuid4().hex}
            marks.append(mark)
            await node.broker.publish(topic, orjson.dumps(mark))
        await self.wait_until(lambda: all((topic, m) in self.got for m in marks))


@dataclass
class Node:
    id: str
    broker: Broker
    diffs: Diffs
    presence: PresenceStore


MakeNode = Callable[[], Awaitable[Node]]


async def _nodes(kind: str, stack: AsyncExitStack, ttl: float = TTL) -> MakeNode:
    bus, table = MemoryBus(), PresenceTable()
    prefix = f"onair-test:{uuid.uuid4().hex}:"

    async def make() -> Node:
        diffs = Diffs()
        broker: Broker
        store: PresenceStore
        if kind == "memory":
            broker = MemoryBroker(bus)
            store = MemoryPresenceStore(broker.publish, ttl=ttl, table=table)
        else:
            broker = RedisBroker(REDIS_URL, key_prefix=prefix)
            store = await stack.enter_async_context(
                open_redis_presence(REDIS_URL, broker.publish, ttl=ttl, key_prefix=prefix)
            )
        await broker.start(diffs)
        stack.push_async_callback(broker.close)
        return Node(f"node-{uuid.uuid4().hex[:8]}", broker, diffs, store)

    return make


BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[MakeNode]:
    if request.param == "redis":
        need_redis()
    async with AsyncExitStack() as stack:
        yield await _nodes(request.param, stack)


@pytest.fixture(params=BACKENDS)
async def short_lived_nodes(request: pytest.FixtureRequest) -> AsyncIterator[MakeNode]:
    """Nodes whose presence expires SHORT_TTL after their last heartbeat."""
    if request.param == "redis":
        need_redis()
    async with AsyncExitStack() as stack:
        yield await _nodes(request.param, stack, ttl=SHORT_TTL)


def refs(state: PresenceState) -> dict[str, list[str]]:
    return {key: sorted(m["phx_ref"] for m in metas) for key, metas in state.items()}


def payloads(state: PresenceState) -> dict[str, list[dict[str, Any]]]:
    return {
        key: sorted(({k: v for k, v in m.items() if k != "phx_ref"} for m in metas), key=repr)
        for key, metas in state.items()
    }


async def test_track_lists_and_announces_to_every_node(nodes: MakeNode) -> None:
    a, b = await nodes(), await nodes()
    for node in (a, b):
        await node.broker.subscribe("stream:1")
    await a.presence.track("stream:1", a.id, "c1", "user-42", {"name": "ann"})
    state = await b.presence.list("stream:1")
    assert payloads(state) == {"user-42": [{"name": "ann"}]}
    phx_ref = state["user-42"][0]["phx_ref"]
    for node in (a, b):
        diffs = node.diffs
        await diffs.wait_until(lambda: len(diffs.diffs("stream:1")) == 1)  # noqa: B023 (awaited here)
        assert node.diffs.diffs("stream:1") == [
            {
                "kind": "presence_diff",
                "node": a.id,
                "joins": {"user-42": {"metas": [{"name": "ann", "phx_ref": phx_ref}]}},
                "leaves": {},
            }
        ]


async def test_same_payload_again_is_a_no_op(nodes: MakeNode) -> None:
    a = await nodes()
    await a.broker.subscribe("stream:1")
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 1})
    before = await a.presence.list("stream:1")
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 1})
    await a.diffs.barrier([a], "stream:1")
    assert len(a.diffs.diffs("stream:1")) == 1
    assert await a.presence.list("stream:1") == before


async def test_update_leaves_old_and_joins_new_with_prev_ref(nodes: MakeNode) -> None:
    a = await nodes()
    await a.broker.subscribe("stream:1")
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 1})
    old_ref = (await a.presence.list("stream:1"))["k"][0]["phx_ref"]
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 2})
    state = await a.presence.list("stream:1")
    assert payloads(state) == {"k": [{"n": 2}]}
    new_ref = state["k"][0]["phx_ref"]
    assert new_ref != old_ref
    await a.diffs.barrier([a], "stream:1")
    update = a.diffs.diffs("stream:1")[-1]
    assert update["leaves"] == {"k": {"metas": [{"n": 1, "phx_ref": old_ref}]}}
    joined = {"n": 2, "phx_ref": new_ref, "phx_ref_prev": old_ref}
    assert update["joins"] == {"k": {"metas": [joined]}}


async def test_untrack_announces_leave_once(nodes: MakeNode) -> None:
    a = await nodes()
    await a.broker.subscribe("stream:1")
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 1})
    ref = (await a.presence.list("stream:1"))["k"][0]["phx_ref"]
    await a.presence.untrack("stream:1", a.id, "c1")
    await a.presence.untrack("stream:1", a.id, "c1")
    await a.presence.untrack("stream:1", a.id, "never-tracked")
    assert await a.presence.list("stream:1") == {}
    await a.diffs.barrier([a], "stream:1")
    assert [d["leaves"] for d in a.diffs.diffs("stream:1")] == [
        {},
        {"k": {"metas": [{"n": 1, "phx_ref": ref}]}},
    ]


async def test_one_key_many_entries_across_nodes(nodes: MakeNode) -> None:
    a, b = await nodes(), await nodes()
    await a.presence.track("stream:1", a.id, "tab1", "user-1", {"tab": 1})
    await a.presence.track("stream:1", a.id, "tab2", "user-1", {"tab": 2})
    await b.presence.track("stream:1", b.id, "tab1", "user-1", {"tab": 3})  # same ref, other node
    state = await a.presence.list("stream:1")
    assert payloads(state) == {"user-1": [{"tab": 1}, {"tab": 2}, {"tab": 3}]}
    assert len(set(refs(state)["user-1"])) == 3
    await b.presence.untrack("stream:1", b.id, "tab1")
    assert payloads(await b.presence.list("stream:1")) == {"user-1": [{"tab": 1}, {"tab": 2}]}


async def test_topics_are_isolated(nodes: MakeNode) -> None:
    a = await nodes()
    await a.broker.subscribe("stream:2")
    await a.presence.track("stream:1", a.id, "c1", "k", {})
    assert await a.presence.list("stream:2") == {}
    await a.diffs.barrier([a], "stream:2")
    assert a.diffs.diffs("stream:2") == []


async def test_crashed_node_expires_within_ttl(short_lived_nodes: MakeNode) -> None:
    alive, crashed = await short_lived_nodes(), await short_lived_nodes()
    await alive.broker.subscribe("stream:1")
    assert await alive.presence.heartbeat(alive.id) is False  # first heartbeat: was not alive
    assert await crashed.presence.heartbeat(crashed.id) is False
    await crashed.presence.track("stream:1", crashed.id, "c1", "ghost", {"n": 1})
    await alive.presence.track("stream:1", alive.id, "c1", "real", {"n": 2})
    ghost_ref = (await alive.presence.list("stream:1"))["ghost"][0]["phx_ref"]

    # `crashed` stops heartbeating; `alive` keeps going but has not swept yet
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SHORT_TTL + 0.2
    while loop.time() < deadline:
        assert await alive.presence.heartbeat(alive.id) is True
        await asyncio.sleep(SHORT_TTL / 5)
    assert payloads(await alive.presence.list("stream:1")) == {"real": [{"n": 2}]}

    # the sweep announced the ghost's leave to the topic
    await alive.diffs.barrier([alive], "stream:1")
    assert (crashed.id, {"ghost": {"metas": [{"n": 1, "phx_ref": ghost_ref}]}}) in [
        (d["node"], d["leaves"]) for d in alive.diffs.diffs("stream:1")
    ]

    # the crashed node, back, learns it lost its entries and tracks them again
    assert await crashed.presence.heartbeat(crashed.id) is False
    await crashed.presence.track("stream:1", crashed.id, "c1", "ghost", {"n": 1})
    assert payloads(await alive.presence.list("stream:1")) == {
        "real": [{"n": 2}],
        "ghost": [{"n": 1}],
    }


async def test_caller_may_name_versions(nodes: MakeNode) -> None:
    """A hub that applies its own track locally passes its phx_ref so every node shows the same."""
    a = await nodes()
    await a.broker.subscribe("stream:1")
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 1}, phx_ref="F1")
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 1}, phx_ref="F1")  # same version
    await a.presence.track("stream:1", a.id, "c1", "k", {"n": 1}, phx_ref="F2")  # re-announced
    assert await a.presence.list("stream:1") == {"k": [{"n": 1, "phx_ref": "F2"}]}
    await a.diffs.barrier([a], "stream:1")
    assert [(d["node"], d["joins"], d["leaves"]) for d in a.diffs.diffs("stream:1")] == [
        (a.id, {"k": {"metas": [{"n": 1, "phx_ref": "F1"}]}}, {}),
        (
            a.id,
            {"k": {"metas": [{"n": 1, "phx_ref": "F2", "phx_ref_prev": "F1"}]}},
            {"k": {"metas": [{"n": 1, "phx_ref": "F1"}]}},
        ),
    ]
    with pytest.raises(ValueError):
        await a.presence.track("stream:1", a.id, "c1", "k", {}, phx_ref="bad|ref")


async def test_ids_with_separator_are_rejected(nodes: MakeNode) -> None:
    a = await nodes()
    with pytest.raises(ValueError):
        await a.presence.track("stream:1", "bad|node", "c1", "k", {})
    with pytest.raises(ValueError):
        await a.presence.track("stream:1", a.id, "bad|ref", "k", {})
    assert await a.presence.list("stream:1") == {}


# --- property ----------------------------------------------------------------------------------

Step = tuple[Any, ...]
step = st.one_of(
    st.tuples(
        st.just("track"),
        st.integers(0, 1),  # node
        st.sampled_from(["t0", "t1"]),
        st.sampled_from(["r0", "r1", "r2"]),
        st.sampled_from(["k0", "k1"]),
        st.fixed_dictionaries({"n": st.integers(0, 2)}),
    ),
    st.tuples(
        st.just("untrack"),
        st.integers(0, 1),
        st.sampled_from(["t0", "t1"]),
        st.sampled_from(["r0", "r1", "r2"]),
    ),
)


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, max_size=25))
def test_presence_matches_model_and_diffs_rebuild_state(kind: str, steps: list[Step]) -> None:
    """Property 8 (presence part): after any track/untrack sequence on two nodes, ``list`` equals
    a dict model, and a client that applies every diff it received, the way realtime-js and
    realtime-py merge them, ends with exactly that state.
    """
    if kind == "redis":
        need_redis()
    asyncio.run(_check_steps(kind, steps))


async def _check_steps(kind: str, steps: list[Step]) -> None:
    async with AsyncExitStack() as stack:
        make = await _nodes(kind, stack)
        nodes = [await make(), await make()]
        observer = nodes[0]
        for topic in ("t0", "t1"):
            await observer.broker.subscribe(topic)
        model: dict[str, dict[tuple[int, str], tuple[str, dict[str, Any]]]] = {"t0": {}, "t1": {}}
        for s in steps:
            node = nodes[s[1]]
            if s[0] == "track":
                _, n, topic, ref, key, meta = s
                await node.presence.track(topic, node.id, ref, key, meta)
                model[topic][(n, ref)] = (key, meta)
            else:
                _, n, topic, ref = s
                await node.presence.untrack(topic, node.id, ref)
                model[topic].pop((n, ref), None)
        for topic in ("t0", "t1"):
            await observer.diffs.barrier(nodes, topic)
            listed = await observer.presence.list(topic)
            expected: dict[str, list[dict[str, Any]]] = {}
            for key, meta in model[topic].values():
                expected.setdefault(key, []).append(meta)
            assert payloads(listed) == {k: sorted(v, key=repr) for k, v in expected.items()}
            assert _client_view(observer.diffs.diffs(topic)) == _client_view_of(listed)


def _client_view(diffs: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Merge diffs as PHX-JS ``syncDiff`` does: joins replace same-ref metas, then leaves remove."""
    state: dict[str, list[dict[str, Any]]] = {}
    for diff in diffs:
        for key, new in diff["joins"].items():
            new_refs = {m["phx_ref"] for m in new["metas"]}
            kept = [m for m in state.get(key, []) if m["phx_ref"] not in new_refs]
            state[key] = kept + new["metas"]
        for key, left in diff["leaves"].items():
            gone = {m["phx_ref"] for m in left["metas"]}
            remaining = [m for m in state.get(key, []) if m["phx_ref"] not in gone]
            if remaining:
                state[key] = remaining
            else:
                state.pop(key, None)
    return _client_view_of(state)


REFS = ("phx_ref", "phx_ref_prev")


def _client_view_of(state: PresenceState) -> dict[str, list[tuple[str, str]]]:
    return {
        key: sorted(
            (m["phx_ref"], repr(sorted((k, v) for k, v in m.items() if k not in REFS)))
            for m in metas
        )
        for key, metas in state.items()
    }
