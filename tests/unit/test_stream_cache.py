"""StreamCache over real in-memory brokers on one bus (two "processes")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from onair.broker.memory import MemoryBroker, MemoryBus
from onair.errors import Problem
from onair.services.events import encode, row_event, stream_state_event
from onair.services.stream_cache import CACHE_TOPIC, StreamCache

S = "0190d5a0-0000-7000-8000-000000000001"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[StreamCache, StreamCache]]:
    bus = MemoryBus()
    caches = []
    for _ in range(2):
        broker = MemoryBroker(bus)
        cache = StreamCache(broker, ttl=300, max_streams=100)
        await broker.start(cache)
        await cache.start()
        caches.append(cache)
    yield caches[0], caches[1]


def loader(value: object) -> object:
    async def load() -> object:
        return value
    return load


async def test_a_change_here_drops_the_entry_in_every_process(pair) -> None:
    a, b = pair
    dropped: list[str] = []
    b.listeners.append(dropped.append)
    assert await b.row(S, loader("old")) == "old"
    assert await b.access_of(S, loader("old facts")) == "old facts"
    assert await b.row(S, loader("new")) == "old"  # cached
    await a.changed(S)
    assert await b.row(S, loader("new")) == "new"
    assert await b.access_of(S, loader("new facts")) == "new facts"
    assert dropped == [S]
    assert (a.invalidations["local"], b.invalidations["remote"], a.invalidations["remote"]) == (1, 1, 0)


async def test_a_row_only_change_keeps_the_access_facts(pair) -> None:
    a, b = pair
    await b.row(S, loader("row"))
    await b.access_of(S, loader("facts"))
    await a.changed(S, access=False)  # e.g. a viewer count
    assert await b.row(S, loader("row 2")) == "row 2"
    assert await b.access_of(S, loader("facts 2")) == "facts"


async def test_a_read_that_began_before_the_change_does_not_put_its_answer_back(pair) -> None:
    a, b = pair
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        reading.set()
        await release.wait()
        return "read before the change"

    task = asyncio.create_task(b.access_of(S, slow))
    await reading.wait()
    await a.changed(S)  # commits and drops while b's read is in flight
    release.set()
    assert await task == "read before the change"  # that caller may see it: it overlapped
    assert await b.access_of(S, loader("after")) == "after"  # but nobody after it


async def test_fresh_reads_past_the_cache_and_refreshes_it(pair) -> None:
    _, b = pair
    await b.access_of(S, loader("cached"))
    assert await b.access_of(S, loader("database"), fresh=True) == "database"
    assert await b.access_of(S, loader("other")) == "database"


async def test_a_short_life_is_honoured(pair) -> None:
    _, b = pair
    await b.access_of(S, loader("muted until soon"), lambda _: -1.0)
    assert await b.access_of(S, loader("read again")) == "read again"


async def test_changing_publishes_unless_the_write_was_refused(pair) -> None:
    a, b = pair
    with pytest.raises(Problem):
        async with a.changing(S):
            raise Problem(403, "not-stream-owner", "Not allowed")
    assert b.invalidations["remote"] == 0
    with pytest.raises(RuntimeError):
        async with a.changing(S):
            raise RuntimeError("the commit may have happened")
    async with a.changing(S):
        pass
    assert b.invalidations["remote"] == 2


async def test_change_events_drop_too_and_chat_inserts_are_not_parsed(pair) -> None:
    _, b = pair
    await b.access_of(S, loader("facts"))
    chat = row_event("chat_messages", "INSERT", {"stream_id": S, "seq": 1}, None, datetime.now(UTC))
    b.on_message(f"stream:{S}", encode(chat))
    assert await b.access_of(S, loader("x")) == "facts"
    b.on_message(f"stream:{S}", b"not json")
    state = stream_state_event({"id": S, "status": "ended", "version": 4}, "live")
    b.on_message(f"stream:{S}", encode(state))
    assert await b.access_of(S, loader("ended facts")) == "ended facts"
    assert b.invalidations["event"] == 1


async def test_a_malformed_drop_empties_the_cache(pair) -> None:
    _, b = pair
    await b.row(S, loader("row"))
    for bad in (b"{", orjson.dumps({"no": "stream"}), orjson.dumps({"stream_id": 7}), b"[]"):
        await b.row(S, loader("row"))
        b.on_message(CACHE_TOPIC, bad)
        assert len(b.rows) == 0


async def test_nothing_is_cached_while_the_broker_link_is_down(pair) -> None:
    _, b = pair
    await b.row(S, loader("before"))
    b.on_link_down("lost")
    assert await b.row(S, loader("during")) == "during"
    assert await b.row(S, loader("during 2")) == "during 2"  # drops may be missed: not kept
    b.on_link_up()
    assert await b.row(S, loader("after")) == "after"
    assert await b.row(S, loader("later")) == "after"


async def test_ttl_zero_turns_it_off_and_publishes_nothing() -> None:
    bus = MemoryBus()
    broker = MemoryBroker(bus)
    off = StreamCache(broker, ttl=0, max_streams=100)
    await off.start()
    assert CACHE_TOPIC not in broker.topics
    assert await off.row(S, loader(1)) == 1
    assert await off.row(S, loader(2)) == 2
    await off.changed(S)  # no broker round trip


async def test_bounded() -> None:
    small = StreamCache(None, ttl=300, max_streams=3)
    for i in range(10):
        await small.row(f"s{i}", loader(i))
        await small.access_of(f"s{i}", loader(i))
    assert small.sizes() == {"stream": 3, "access": 3}
