"""Retention (issue 11 §5) on SQLite and PostgreSQL: expired token-ledger rows and left viewers
are deleted after their grace periods, chat only with ONAIR_CHAT_RETENTION_DAYS, in batches of
at most ``retention_batch_size`` rows per transaction; by the reaper and by ``onair prune``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from onair.context import AppContext
from onair.domain.clock import FakeClock, SystemClock
from onair.domain.ids import uuid7
from onair.services.retention import Pruner, RetentionPolicy
from onair.settings import Settings
from onair.store import retention as retention_store
from onair.store.tables import (
    agora_tokens,
    chat_messages,
    stream_sessions,
    stream_uids,
    stream_viewers,
)

DAY = 86400.0
_serial = iter(range(10**9))


def stream_row(now: datetime, status: str = "live", ended_at: datetime | None = None) -> dict[str, Any]:
    return {"id": uuid7(now), "seller_id": "seller-1", "title": "t", "status": status,
            "created_at": now, "updated_at": now, "ended_at": ended_at}


def token_rows(stream_id: str, expires_at: datetime, n: int) -> list[dict[str, Any]]:
    return [{"id": uuid7(expires_at), "stream_id": stream_id, "user_id": f"u{i}", "uid": i + 1,
             "role": "subscriber", "kind": "rtc", "token_sha256": f"{next(_serial):064x}",
             "issued_at": expires_at - timedelta(hours=1), "expires_at": expires_at}
            for i in range(n)]


def viewer_rows(stream_id: str, left_at: datetime | None, n: int, prefix: str) -> list[dict[str, Any]]:
    joined = (left_at or datetime(2026, 1, 1, tzinfo=UTC)) - timedelta(hours=1)
    return [{"stream_id": stream_id, "user_id": f"{prefix}{i}", "joined_at": joined,
             "last_heartbeat_at": joined, "left_at": left_at} for i in range(n)]


def chat_rows(stream_id: str, at: datetime, n: int) -> list[dict[str, Any]]:
    return [{"id": uuid7(at), "stream_id": stream_id, "seq": i + 1, "sender_id": "b",
             "client_msg_id": f"m{i}", "body": "hi", "created_at": at} for i in range(n)]


class World:
    """Rows around the cutoffs: what must go (``old_*``) and what must stay."""

    def __init__(self, now: datetime, grace: float) -> None:
        self.now = now
        long_ago, recently = now - timedelta(seconds=grace + 3600), now - timedelta(seconds=grace - 3600)
        self.live = stream_row(now - timedelta(days=40))
        self.old_end = stream_row(now - timedelta(days=40), "ended", now - timedelta(days=30))
        self.new_end = stream_row(now - timedelta(days=5), "ended", now - timedelta(days=2))
        self.streams = [self.live, self.old_end, self.new_end]
        sid = self.live["id"]
        self.tokens = {"old": token_rows(sid, long_ago, 23), "recent": token_rows(sid, recently, 4),
                       "valid": token_rows(sid, now + timedelta(hours=1), 3)}
        self.viewers = {"old": viewer_rows(sid, long_ago, 17, "old"),
                        "recent": viewer_rows(sid, recently, 4, "recent"),
                        "present": viewer_rows(sid, None, 3, "here")}
        self.chat = {s["id"]: chat_rows(s["id"], s["created_at"] + timedelta(minutes=1), n)
                     for s, n in ((self.live, 5), (self.old_end, 26), (self.new_end, 7))}

    async def insert(self, ctx: AppContext) -> None:
        async with ctx.db.write() as conn:
            await conn.execute(insert(stream_sessions), self.streams)
            await conn.execute(insert(agora_tokens), [r for rows in self.tokens.values() for r in rows])
            await conn.execute(insert(stream_viewers), [r for rows in self.viewers.values() for r in rows])
            await conn.execute(insert(chat_messages), [r for rows in self.chat.values() for r in rows])


async def counts(ctx: AppContext) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        tokens = set((await conn.execute(select(agora_tokens.c.token_sha256))).scalars())
        viewers = set((await conn.execute(select(stream_viewers.c.user_id))).scalars())
        chat = dict((await conn.execute(select(chat_messages.c.stream_id, func.count())
                                        .group_by(chat_messages.c.stream_id))).all())
        purged = dict((await conn.execute(select(stream_sessions.c.id,
                                                 stream_sessions.c.chat_purged_at))).all())
    return {"tokens": tokens, "viewers": viewers, "chat": chat, "purged": purged}


def policy(batch: int = 10, chat_days: float | None = None, grace: float = DAY,
           roster_grace: float = 1000 * DAY) -> RetentionPolicy:
    return RetentionPolicy(token_grace=grace, viewer_grace=grace, chat_days=chat_days, batch=batch,
                           batches_per_pass=100, roster_grace=roster_grace)


class CountingWrites:
    """Counts write transactions, to see that the prune runs one per batch."""

    def __init__(self, ctx: AppContext) -> None:
        self.db, self.transactions = ctx.db, 0
        self._write = ctx.db.write

    def write(self) -> Any:
        self.transactions += 1
        return self._write()

    def read(self) -> Any:
        return self.db.read()


async def test_prune_deletes_exactly_what_is_due_in_batches(ctx: AppContext, clock: FakeClock) -> None:
    world = World(clock.now(), DAY)
    await world.insert(ctx)
    counted = CountingWrites(ctx)
    pruner = Pruner(counted, clock, policy(batch=10))  # type: ignore[arg-type]

    first = await pruner.prune(max_batches=1)  # one transaction per kind, at most one batch each
    assert first == {"tokens_pruned": 10, "viewers_pruned": 10, "chat_pruned": 0, "roster_pruned": 0}
    assert counted.transactions == 2

    rest = await pruner.prune()
    assert rest == {"tokens_pruned": 13, "viewers_pruned": 7, "chat_pruned": 0, "roster_pruned": 0}
    # 13 tokens: batches of 10 + 3; 7 viewers: one short batch
    assert counted.transactions == 2 + 2 + 1

    after = await counts(ctx)
    sha = {k: {r["token_sha256"] for r in rows} for k, rows in world.tokens.items()}
    assert after["tokens"] == sha["recent"] | sha["valid"]
    assert after["viewers"] == {r["user_id"] for k in ("recent", "present") for r in world.viewers[k]}
    # chat is kept by default, however old
    assert after["chat"] == {sid: len(rows) for sid, rows in world.chat.items()}
    assert not any(after["purged"].values())
    assert await pruner.prune() == {"tokens_pruned": 0, "viewers_pruned": 0, "chat_pruned": 0, "roster_pruned": 0}


async def test_chat_retention_deletes_only_chat_of_streams_ended_long_ago(ctx: AppContext, clock: FakeClock) -> None:
    world = World(clock.now(), DAY)
    await world.insert(ctx)
    counted = CountingWrites(ctx)
    pruner = Pruner(counted, clock, policy(batch=10, chat_days=7))  # type: ignore[arg-type]

    done = await pruner.prune()
    assert done["chat_pruned"] == 26
    after = await counts(ctx)
    assert after["chat"] == {world.live["id"]: 5, world.new_end["id"]: 7}
    assert after["purged"][world.old_end["id"]] is not None
    assert after["purged"][world.live["id"]] is None and after["purged"][world.new_end["id"]] is None
    # the marked stream is not looked at again: a later pass finds nothing to do
    async with ctx.db.read() as conn:
        assert await retention_store.streams_to_purge(conn, clock.now() - timedelta(days=7), 100) == []
    assert (await pruner.prune())["chat_pruned"] == 0


async def test_the_uid_roster_of_streams_ended_past_the_grace_is_deleted(ctx: AppContext,
                                                                         clock: FakeClock) -> None:
    """stream_uids rows of a stream ended before ONAIR_RETENTION_ROSTER_GRACE go, in batches by
    primary key; live and recently ended streams keep theirs; a marked stream is not read again."""
    world = World(clock.now(), DAY)
    await world.insert(ctx)
    sizes = {world.live["id"]: 4, world.old_end["id"]: 12, world.new_end["id"]: 3}
    async with ctx.db.write() as conn:
        await conn.execute(insert(stream_uids), [
            {"stream_id": sid, "user_id": f"u{i}", "uid": i + 1} for sid, n in sizes.items() for i in range(n)])
    counted = CountingWrites(ctx)
    pruner = Pruner(counted, clock, policy(batch=5, roster_grace=3 * DAY))  # type: ignore[arg-type]
    done = await pruner.prune()
    assert done["roster_pruned"] == 12
    # tokens 23 (5 batches), viewers 17 (4 batches), roster 5 + 5 + 2 (3 batches, the last marks)
    assert counted.transactions == 5 + 4 + 3
    async with ctx.db.read() as conn:
        left = dict((await conn.execute(select(stream_uids.c.stream_id, func.count())
                                        .group_by(stream_uids.c.stream_id))).all())
        marked = dict((await conn.execute(select(stream_sessions.c.id,
                                                 stream_sessions.c.roster_purged_at))).all())
        assert await retention_store.rosters_to_purge(conn, clock.now() - timedelta(days=3), 10) == []
    assert left == {world.live["id"]: 4, world.new_end["id"]: 3}
    assert marked[world.old_end["id"]] is not None
    assert marked[world.live["id"]] is None and marked[world.new_end["id"]] is None
    before = counted.transactions
    assert (await pruner.prune())["roster_pruned"] == 0
    assert counted.transactions == before + 2  # one empty batch of tokens and viewers; roster: reads only
    clock.advance(2 * DAY)  # now the recent end is due too
    assert (await pruner.prune())["roster_pruned"] == 3


async def test_a_viewer_who_comes_back_is_never_lost(ctx: AppContext, clock: FakeClock, make_user: Any,
                                                      app_client: Any) -> None:
    """A left row pruned between a join's read and its write: the join still counts."""
    _seller, seller_h = make_user("seller")
    sid = (await app_client.post("/api/v1/streams", headers=seller_h, json={"title": "x"})).json()["id"]
    assert (await app_client.post(f"/api/v1/streams/{sid}/start", headers=seller_h)).status_code == 200
    buyer, buyer_h = make_user("buyer")
    assert (await app_client.post(f"/api/v1/streams/{sid}/viewers", headers=buyer_h)).status_code == 200
    assert (await app_client.delete(f"/api/v1/streams/{sid}/viewers/me", headers=buyer_h)).status_code in (200, 204)
    clock.advance(2 * DAY)
    from onair.store import streams as streams_store

    async with ctx.db.write() as conn:  # the join's view: the row it read is gone when it writes
        existing = await streams_store.get_viewer(conn, sid, buyer)
        assert existing is not None and existing.left_at is not None
        assert await retention_store.delete_left_viewers(conn, clock.now(), 10) == 1
        await streams_store.upsert_present_viewer(conn, sid, buyer, clock.now(), existing)
        assert await streams_store.count_present(conn, sid) == 1


async def test_the_reaper_prunes(ctx: AppContext, clock: FakeClock) -> None:
    world = World(clock.now(), ctx.settings.retention_token_grace)
    await world.insert(ctx)
    done = await ctx.reaper.run_once()
    assert done is not None
    assert done["tokens_pruned"] == 23
    assert done["chat_pruned"] == 0
    after = await counts(ctx)
    assert len(after["tokens"]) == 7


async def test_the_reaper_runs_a_bounded_number_of_batches_per_pass(settings: Settings, ctx: AppContext,
                                                                     clock: FakeClock) -> None:
    world = World(clock.now(), DAY)
    await world.insert(ctx)
    from onair.services.reaper import Reaper

    reaper = Reaper(ctx.db, ctx.streams, clock, interval=3600, lease_seconds=30,
                    pruner=Pruner(ctx.db, clock, RetentionPolicy(DAY, DAY, None, 5, 2)))
    first = await reaper.run_once()
    assert first is not None and first["tokens_pruned"] == 10 and first["viewers_pruned"] == 10
    second = await reaper.run_once()
    assert second is not None and second["tokens_pruned"] == 10 and second["viewers_pruned"] == 7
    third = await reaper.run_once()
    assert third is not None and third["tokens_pruned"] == 3
    await reaper.stop()


def env_of(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONAIR_")}
    env["ONAIR_DATA_DIR"] = str(settings.data_dir)
    env["ONAIR_JWT_SECRET"] = "prune-" + "x" * 40
    if settings.database_url:
        env["ONAIR_DATABASE_URL"] = settings.database_url
    if settings.database_schema:
        env["ONAIR_DATABASE_SCHEMA"] = settings.database_schema
    return env


def run_prune(settings: Settings, *args: str, **env: str) -> Iterator[Any]:
    out = subprocess.run([sys.executable, "-m", "onair.cli", "prune", *args], check=False,
                         env={**env_of(settings), **env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_onair_prune_command(settings: Settings, ctx: AppContext) -> None:
    world = World(SystemClock().now(), DAY)  # the command runs on the real clock
    await world.insert(ctx)
    first = run_prune(settings, "--batch-size", "7", ONAIR_RETENTION_TOKEN_GRACE=str(DAY),
                      ONAIR_RETENTION_VIEWER_GRACE=str(DAY))
    assert first == {"tokens_pruned": 23, "viewers_pruned": 17, "chat_pruned": 0, "roster_pruned": 0}
    assert len((await counts(ctx))["chat"]) == 3  # chat kept by default
    second = run_prune(settings, "--chat-retention-days", "7", ONAIR_RETENTION_TOKEN_GRACE=str(DAY),
                       ONAIR_RETENTION_VIEWER_GRACE=str(DAY))
    assert second == {"tokens_pruned": 0, "viewers_pruned": 0, "chat_pruned": 26, "roster_pruned": 0}
    assert (await counts(ctx))["chat"] == {world.live["id"]: 5, world.new_end["id"]: 7}


async def test_the_prune_stops_when_its_time_budget_is_spent(ctx: AppContext, clock: FakeClock) -> None:
    """The reaper gives the prune half its lease: no transaction starts after the budget."""
    world = World(clock.now(), DAY)
    await world.insert(ctx)
    pruner = Pruner(ctx.db, clock, policy(batch=10, chat_days=7))
    assert await pruner.prune(budget=0) == {"tokens_pruned": 0, "viewers_pruned": 0, "chat_pruned": 0, "roster_pruned": 0}
    assert await pruner.prune(budget=60) == {"tokens_pruned": 23, "viewers_pruned": 17, "chat_pruned": 26, "roster_pruned": 0}
