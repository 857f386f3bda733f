"""Property 12 as a measurement: does a request cost more when the tables are 100 times bigger?
Prints one JSON object.

    python bench/table_size.py [--db sqlite|postgresql|both] [--iterations 150] [--rounds 3]

For each database it opens two onair contexts side by side (the real services, in this
process, no HTTP): a *small* database (1,000 streams, 10,000 chat rows, 2,000 viewers, Agora
ledger rows and uids) and a *large* one (100,000 streams, 1,000,000 chat rows, 200,000 of each of
the others), filled with bulk SQL (generate_series on PostgreSQL, a recursive CTE on SQLite). In
both, one live stream made through the service with the same 2,000 messages is the one measured.

Then, alternating between the two databases call by call so that whatever else the machine does
hits both alike, it times: token issue (a new viewer), token refresh, chat send, a history page,
a resync page, stream lists (by status, by seller, with a cursor) and one reaper pass (lease,
timeouts, retention — nothing due). Per operation it reports p50 on each size and the ratio
large/small per round; the verdict is the median ratio over rounds (target ≤ 1.5).

The small database is the calibration: both are measured in the same process within
milliseconds of each other, so the ratio, not the absolute numbers, is what carries over to a
quieter machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from onair.app import build_context, start_context, stop_context
from onair.context import AppContext
from onair.domain.identity import Principal, Role
from onair.domain.streams import Status
from onair.logs import configure_logging
from onair.settings import Settings
from onair.store.db import async_url
from onair.store.types import UTCDateTime

PG_URL = os.environ.get("ONAIR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
HOT_CHAT = 2000
SIZES = {"small": (1_000, 10_000), "large": (100_000, 1_000_000)}  # streams, chat rows


def series(dialect: str) -> tuple[str, str, Callable[[str, int], str]]:
    """(prefix, FROM source, hex formatter) producing integers i in [0, :n)."""
    if dialect == "postgresql":
        return "", "generate_series(0, :n - 1) AS g(i)", lambda e, w: f"lpad(to_hex({e}), {w}, '0')"
    return ("WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < :n) ", "g",
            lambda e, w: f"printf('%0{w}x', {e})")


def fill_statements(dialect: str, streams: int) -> list[tuple[str, int]]:
    pre, src, hexed = series(dialect)
    # every seller has 25 streams in both sizes, so a seller's page holds the same rows
    sid = lambda e: f"'00000000-0000-7000-8000-' || {hexed(e, 12)}"  # noqa: E731  (older than any uuid7)
    live = f"(i % {streams}) % 10 = 0"  # one bulk stream in ten is live (heartbeat in the future)
    return [
        (pre + "INSERT INTO stream_sessions (id, seller_id, title, status, version, created_at, updated_at, "
         "started_at, ended_at, last_host_heartbeat_at, viewer_count, peak_viewers, slow_mode_seconds, "
         f"last_chat_seq) SELECT {sid('i')}, 'bulk-seller-' || (i % {streams // 25}), 'bulk', "
         "CASE WHEN i % 10 = 0 THEN 'live' ELSE 'ended' END, 2, :created, :created, :created, "
         "CASE WHEN i % 10 = 0 THEN NULL ELSE :ended END, CASE WHEN i % 10 = 0 THEN :future ELSE NULL END, "
         f"0, 0, 0, 0 FROM {src}", streams),
        (pre + "INSERT INTO stream_transitions (stream_id, version, from_status, to_status, at) "
         f"SELECT {sid('i')}, 2, 'scheduled', 'live', :created FROM {src}", streams),
        (pre + "INSERT INTO chat_messages (id, stream_id, seq, sender_id, client_msg_id, body, created_at, "
         f"sent_body_sha256) SELECT '00000000-0000-7000-9000-' || {hexed('i', 12)}, {sid(f'i % {streams}')}, "
         f"i / {streams} + 1, 'bulk-buyer-' || (i % 5000), 'b' || i, 'a bulk message', :created, '' "
         f"FROM {src}", -1),
        (pre + "INSERT INTO stream_viewers (stream_id, user_id, joined_at, last_heartbeat_at, left_at) "
         f"SELECT {sid(f'i % {streams}')}, 'bulk-viewer-' || i, :created, :future, "
         f"CASE WHEN {live} THEN NULL ELSE :ended END FROM {src}", 2 * streams),
        (pre + "INSERT INTO agora_tokens (id, stream_id, user_id, uid, role, kind, token_sha256, issued_at, "
         f"expires_at) SELECT '00000000-0000-7000-a000-' || {hexed('i', 12)}, {sid(f'i % {streams}')}, "
         f"'bulk-viewer-' || i, i + 1, 'subscriber', 'rtc', {hexed('i', 64)}, :created, :future FROM {src}",
         2 * streams),
        (pre + "INSERT INTO stream_uids (stream_id, user_id, uid) "
         f"SELECT {sid(f'i % {streams}')}, 'bulk-viewer-' || i, i + 1 FROM {src}", 2 * streams),
    ]


async def fill(ctx: AppContext, streams: int, chat: int) -> float:
    started = time.perf_counter()
    now = datetime.now(UTC)
    times = {"created": now - timedelta(days=30), "ended": now - timedelta(hours=1),
             "future": now + timedelta(days=2)}
    async with ctx.db.write() as conn:
        dialect = conn.dialect.name
        for sql, n in fill_statements(dialect, streams):
            statement = text(sql).bindparams(*(bindparam(k, type_=UTCDateTime) for k in times if f":{k}" in sql))
            await conn.execute(statement, {"n": chat if n == -1 else n, **{k: v for k, v in times.items() if f":{k}" in sql}})
        await conn.execute(text(f"UPDATE stream_sessions SET last_chat_seq = {chat // streams} "
                                "WHERE id LIKE '00000000-%'"))
    async with ctx.db.write() as conn:
        if dialect == "postgresql":
            await conn.execute(text("ANALYZE"))  # what autovacuum does on a real server
    if dialect == "sqlite":  # a server's WAL is checkpointed long since: do not time the fill's
        async with ctx.db.read() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


class World:
    """One database with a hot live stream, its seller and the users the measurements use."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.seller = Principal("hot-seller", Role.SELLER)
        self.sid = ""
        self.n = 0

    async def prepare(self) -> None:
        ctx = self.ctx
        stream = await ctx.streams.create(self.seller, "hot")
        self.sid = stream.id
        from onair.domain.streams import Action

        await ctx.streams.act(self.seller, self.sid, Action.START)
        async with ctx.db.write() as conn:  # the same 2,000 messages in both databases
            pre, src, _ = series(conn.dialect.name)
            await conn.execute(text(
                pre + "INSERT INTO chat_messages (id, stream_id, seq, sender_id, client_msg_id, body, "
                f"created_at, sent_body_sha256) SELECT '00000000-0000-7000-b000-' || {series(conn.dialect.name)[2]('i', 12)}, "
                f":sid, i + 1, 'hot-buyer', 'h' || i, 'a hot message', :at, '' FROM {src}"
            ).bindparams(bindparam("at", type_=UTCDateTime)), {"n": HOT_CHAT, "sid": self.sid, "at": datetime.now(UTC)})
            await conn.execute(text("UPDATE stream_sessions SET last_chat_seq = :n WHERE id = :sid"),
                               {"n": HOT_CHAT, "sid": self.sid})
        await ctx.tokens.issue(Principal("refresher", Role.BUYER), self.sid, "rtc")

    def ops(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        ctx, sid = self.ctx, self.sid

        def fresh() -> Principal:
            self.n += 1
            return Principal(f"viewer-{self.n}", Role.BUYER)

        async def chat_send() -> Any:
            self.n += 1
            return await ctx.chat.send(Principal(f"chatter-{self.n % 50}", Role.BUYER), sid,
                                       f"hello {self.n}", f"c{self.n}")

        return {
            "token_issue": lambda: ctx.tokens.issue(fresh(), sid, "rtc"),
            "token_refresh": lambda: ctx.tokens.issue(Principal("refresher", Role.BUYER), sid, "rtc",
                                                      refresh=True),
            "chat_send": chat_send,
            "history_page": lambda: ctx.chat.page(sid, before_seq=HOT_CHAT - 500, after_seq=None, limit=50),
            "resync_page": lambda: ctx.chat.page(sid, before_seq=None, after_seq=HOT_CHAT // 2, limit=50),
            "list_live": lambda: ctx.streams.list(status=Status.LIVE, seller_id=None, cursor=None, limit=20),
            "list_by_seller": lambda: ctx.streams.list(status=None, seller_id="bulk-seller-7",
                                                       cursor=None, limit=20),
            "list_ended_cursor": lambda: ctx.streams.list(
                status=Status.ENDED, seller_id=None, cursor="00000000-0000-7000-8000-000000000300", limit=20),
            "reaper_pass": ctx.reaper.run_once,
        }


def settings_for(db: str, data_dir: Path, schema: str | None) -> Settings:
    extra: dict[str, Any] = {"database_url": PG_URL, "database_schema": schema} if db == "postgresql" else {}
    return Settings(_env_file=None, data_dir=data_dir, jwt_secret="size-" + "x" * 40, reaper_interval=3600,
                    agora_app_id=APP_ID, agora_app_certificate=CERT, agora_token_rate_limit="10000000/minute",
                    chat_rate_per_second=100000, chat_rate_burst=100000, log_level="warning",
                    db_timeout=600, **extra)  # the bulk fill runs minutes on PostgreSQL


async def pg(sql: str) -> None:
    engine = create_async_engine(async_url(PG_URL))
    async with engine.begin() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


async def run_backend(db: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="onair-size-"))
    schemas = {name: f"size_{name}_{secrets.token_hex(3)}" if db == "postgresql" else None for name in SIZES}
    worlds: dict[str, World] = {}
    fills: dict[str, float] = {}
    try:
        for name, schema in schemas.items():
            if schema:
                await pg(f'CREATE SCHEMA "{schema}"')
            ctx = build_context(settings_for(db, tmp / name, schema))
            await start_context(ctx, reaper=False)
            fills[name] = round(await fill(ctx, *SIZES[name]), 1)
            worlds[name] = World(ctx)
            await worlds[name].prepare()
        ops = {name: w.ops() for name, w in worlds.items()}
        for name in ops:  # warm every path (caches, prepared statements) before timing
            for op in ops[name].values():
                for _ in range(5):
                    await op()
        rounds: list[dict[str, dict[str, float]]] = []
        for _ in range(args.rounds):
            samples: dict[str, dict[str, list[float]]] = {n: {op: [] for op in ops[n]} for n in ops}
            for op in ops["small"]:
                for i in range(args.iterations):  # call by call, alternating which goes first
                    for name in (("small", "large") if i % 2 == 0 else ("large", "small")):
                        call = ops[name][op]
                        t0 = time.perf_counter()
                        await call()
                        samples[name][op].append(time.perf_counter() - t0)
            rounds.append({op: {n: statistics.median(samples[n][op]) * 1000 for n in ops} for op in ops["small"]})
        result: dict[str, Any] = {}
        for op in ops["small"]:
            ratios = [r[op]["large"] / r[op]["small"] for r in rounds]
            result[op] = {"p50_ms_small": round(statistics.median(r[op]["small"] for r in rounds), 3),
                          "p50_ms_large": round(statistics.median(r[op]["large"] for r in rounds), 3),
                          "ratio_per_round": [round(x, 2) for x in ratios],
                          "ratio": round(statistics.median(ratios), 2)}
        worst = max(v["ratio"] for v in result.values())
        return {"fill_seconds": fills, "operations": result, "worst_ratio": worst, "ok": worst <= 1.5}
    finally:
        for w in worlds.values():
            await stop_context(w.ctx)
        for schema in schemas.values():
            if schema:
                await pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(tmp, ignore_errors=True)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results: dict[str, Any] = {}
    for db in dbs:
        try:
            results[db] = await run_backend(db, args)
        except Exception as exc:  # report the other backend's numbers anyway
            results[db] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"table_size: {db}: {orjson.dumps(results[db]).decode()}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--iterations", type=int, default=150, help="per operation, size and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging("warning", stream=sys.stderr)  # stdout is the JSON result
    results = asyncio.run(main_async(args))
    print(orjson.dumps({
        "bench": "table_size", "python": platform.python_version(), "cpus": os.cpu_count(),
        "note": "machine shared with other jobs; the ratio large/small is the result",
        "sizes": {n: {"streams": s, "chat_rows": c, "viewers_tokens_uids_each": 2 * s} for n, (s, c) in SIZES.items()},
        "target_ratio": 1.5, "iterations": args.iterations, "rounds": args.rounds, **results,
    }).decode())


if __name__ == "__main__":
    main()
