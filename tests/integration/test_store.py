"""The store on both backends: migrations match the tables, leases, events after commit."""

from __future__ import annotations

from typing import Any

import orjson
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from onair.context import AppContext
from onair.domain.identity import Principal, Role
from onair.domain.streams import Action
from onair.services.reaper import Reaper
from onair.store.tables import metadata


async def test_migrations_create_exactly_the_declared_schema(ctx: AppContext) -> None:
    def diff(conn: Any) -> list[Any]:
        return compare_metadata(MigrationContext.configure(conn), metadata)

    async with ctx.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_only_one_reaper_holds_the_lease(ctx: AppContext, clock) -> None:
    first = Reaper(ctx.db, ctx.streams, clock, interval=1, lease_seconds=30, holder="a")
    second = Reaper(ctx.db, ctx.streams, clock, interval=1, lease_seconds=30, holder="b")
    assert await first.run_once() is not None
    assert await second.run_once() is None
    assert await first.run_once() is not None  # renewal by the holder
    clock.advance(31)
    assert await second.run_once() is not None  # lapsed lease changes hands
    assert await first.run_once() is None
    await second.stop()  # releasing lets the other take over at once
    assert await first.run_once() is not None


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def on_message(self, topic: str, data: bytes) -> None:
        if topic.startswith("stream:"):  # not the cache's drops on onair:cache
            self.messages.append((topic, orjson.loads(data)))


async def test_events_follow_commits(ctx: AppContext, clock) -> None:
    recorder = Recorder()
    ctx.broker_fan_in.consumers.append(recorder)
    seller = Principal("s1", Role.SELLER)
    stream = await ctx.streams.create(seller, "events")
    await ctx.broker.subscribe(f"stream:{stream.id}")
    await ctx.streams.act(seller, stream.id, Action.START)
    await ctx.streams.join(Principal("b1", Role.BUYER), stream.id)
    clock.advance(60)
    await ctx.streams.reap()  # host silent → paused; viewer silent → left
    kinds = [(m["kind"], m.get("table"), m.get("type")) for _, m in recorder.messages]
    assert kinds == [
        ("row", "stream_sessions", "UPDATE"), ("stream_state", None, None),
        ("row", "stream_viewers", "INSERT"), ("viewer_count", None, None),
        ("row", "stream_sessions", "UPDATE"), ("stream_state", None, None),
        ("row", "stream_viewers", "UPDATE"), ("viewer_count", None, None),
    ]
    states = [m for _, m in recorder.messages if m["kind"] == "stream_state"]
    assert [s["stream"]["status"] for s in states] == ["live", "paused"]
    assert states[1]["stream"]["pause_reason"] == "host_disconnected"
    assert states[1]["version"] > states[0]["version"]
    assert {topic for topic, _ in recorder.messages} == {f"stream:{stream.id}"}
    counts = [m["viewer_count"] for _, m in recorder.messages if m["kind"] == "viewer_count"]
    assert counts == [1, 0]


async def test_refused_moves_publish_nothing(ctx: AppContext) -> None:
    recorder = Recorder()
    ctx.broker_fan_in.consumers.append(recorder)
    seller = Principal("s1", Role.SELLER)
    stream = await ctx.streams.create(seller, "quiet")
    await ctx.broker.subscribe(f"stream:{stream.id}")
    for principal, action in [(Principal("b", Role.BUYER), Action.START), (seller, Action.RESUME)]:
        try:
            await ctx.streams.act(principal, stream.id, action)
        except Exception:
            pass
    assert recorder.messages == []


async def test_stream_access_for_realtime_policies(ctx: AppContext, clock) -> None:
    from datetime import timedelta

    from sqlalchemy import insert

    from onair.store.tables import chat_sanctions, stream_cohosts

    seller = Principal("s1", Role.SELLER)
    stream = await ctx.streams.create(seller, "access")
    now = clock.now()
    async with ctx.db.write() as conn:
        await conn.execute(insert(stream_cohosts).values(
            stream_id=stream.id, user_id="co", invited_by="s1", created_at=now))
        await conn.execute(insert(chat_sanctions), [
            {"id": f"b{i}", "stream_id": stream.id, "user_id": user, "kind": kind, "until": until,
             "created_by": "s1", "created_at": now, "lifted_at": lifted}
            for i, (user, kind, until, lifted) in enumerate([
                ("banned-forever", "ban", None, None),
                ("banned-briefly", "ban", now + timedelta(seconds=60), None),
                ("ban-lifted", "ban", None, now),
                ("muted", "mute", None, None),
            ])])
    access = await ctx.streams.access(stream.id)
    assert access is not None and access.seller_id == "s1"
    assert access.cohosts == {"co"}
    assert access.banned == {"banned-forever", "banned-briefly"}
    clock.advance(61)
    assert (await ctx.streams.access(stream.id)).banned == {"banned-forever"}
    assert await ctx.streams.access("not-a-stream") is None
    assert await ctx.streams.access("01a20b2e-1972-7edf-87a1-c3baf88a72e9") is None
