"""Stream cache benchmark (issue 11 §4): before/after, prints one JSON object.

    python bench/cache.py [--seconds 3] [--runs 3] [--concurrency 32] [--backends sqlite,postgresql]

For each backend and each request — ``GET /api/v1/streams/{id}`` (the pages' and REST clients'
stream read) and ``POST /api/v1/streams/{id}/rtc-token`` (token issue) — it runs the real app
in this process (ASGI called directly, no sockets, so the app's own cost is measured) with the
cache on (``ONAIR_CACHE_TTL=5``) and off (``ONAIR_CACHE_TTL=0``), alternating, ``--runs`` times,
and reports the median requests/s and SQL statements per request (counted on the engine).

The machine is shared: each run is preceded by a calibration (a fixed pure-Python loop, loops/s);
``speedup`` is on/off of the medians and ``per_calibration`` each median over the median
calibration, so runs on a busier or quieter machine compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from onair.app import build_context, create_app, start_context, stop_context
from onair.auth.jwt import mint_token
from onair.logs import configure_logging
from onair.store.db import async_url

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
POSTGRES_URL = os.environ.get("ONAIR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
USERS = 256


def calibrate(seconds: float = 0.3) -> float:
    """Loops/s of a fixed pure-Python workload (dict and int work, like request handling)."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        d: dict[int, int] = {}
        for i in range(1_000):
            d[i] = i * i
        done += 1
    return done / (time.perf_counter() - start)


async def call(app: Any, method: str, path: str, token: str) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 40000), "server": ("bench", 80),
             "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()),
                         (b"content-type", b"application/json"), (b"content-length", b"0")]}
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(settings_update: dict[str, Any], base: dict[str, Any], kind: str, seconds: float,
                  concurrency: int) -> dict[str, float]:
    from onair.settings import Settings

    settings = Settings(_env_file=None, **base, **settings_update)
    ctx = build_context(settings)
    await start_context(ctx, reaper=False)
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    try:
        app = create_app(settings, ctx=ctx, run_reaper=False)
        seller = mint_token(ctx.jwt_secret, "seller", "seller", 3600)
        users = [mint_token(ctx.jwt_secret, f"user-{i}", "buyer", 3600) for i in range(USERS)]
        from onair.domain.identity import Principal, Role
        from onair.domain.streams import Action

        owner = Principal("seller", Role.SELLER)
        stream = await ctx.streams.create(owner, "bench")
        await ctx.streams.act(owner, stream.id, Action.START)
        if kind == "read":
            method, path = "GET", f"/api/v1/streams/{stream.id}"
        else:
            method, path = "POST", f"/api/v1/streams/{stream.id}/rtc-token"
        for token in users:  # uids allocated, caches warm: the steady state
            assert await call(app, method, path, token) == 200
        engines = {id(e): e.sync_engine for e in (ctx.db._writer, ctx.db._reader)}.values()
        for engine in engines:  # SQLite has a reader engine besides the writer
            event.listen(engine, "before_cursor_execute", count)
        done = errors = 0
        deadline = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            nonlocal done, errors
            i = n
            while time.perf_counter() < deadline:
                status = await call(app, method, path, users[i % USERS])
                i += concurrency
                done += 1
                errors += status != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - start
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
        del seller
        return {"req_per_s": done / elapsed, "sql_per_request": statements / max(done, 1),
                "errors": errors}
    finally:
        await stop_context(ctx)


async def backend_settings(name: str, tmp: Path) -> tuple[dict[str, Any], str | None]:
    base: dict[str, Any] = {"data_dir": tmp / name, "jwt_secret": secrets.token_hex(32),
                            "agora_app_id": APP_ID, "agora_app_certificate": SecretStr(CERT),
                            "agora_token_rate_limit": "100000000/minute", "log_level": "warning",
                            "reaper_interval": 3600}
    if name == "sqlite":
        return base, None
    schema = f"bench_cache_{secrets.token_hex(4)}"
    engine = create_async_engine(async_url(POSTGRES_URL))
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await engine.dispose()
    return base | {"database_url": POSTGRES_URL, "database_schema": schema}, schema


async def drop_schema(schema: str) -> None:
    engine = create_async_engine(async_url(POSTGRES_URL))
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("warning", json=True, stream=sys.stderr)  # as `onair serve` would
    out: dict[str, Any] = {
        "bench": "cache", "python": platform.python_version(), "cpus": os.cpu_count(),
        "seconds": args.seconds, "runs": args.runs, "concurrency": args.concurrency,
        "note": "shared 2-core machine; medians of alternating on/off runs; in-process ASGI",
        "results": {},
    }
    calibrations: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            base, schema = await backend_settings(name, Path(tmp))
            try:
                for kind in ("read", "token"):
                    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
                    for _ in range(args.runs):
                        for mode, ttl in (("off", 0.0), ("on", 5.0)):
                            calibrations.append(calibrate())
                            runs[mode].append(await measure({"cache_ttl": ttl}, base, kind,
                                                            args.seconds, args.concurrency))
                    summary: dict[str, Any] = {}
                    for mode, values in runs.items():
                        summary[mode] = {
                            "req_per_s": round(statistics.median(v["req_per_s"] for v in values)),
                            "req_per_s_runs": [round(v["req_per_s"]) for v in values],
                            "sql_per_request": round(statistics.median(
                                v["sql_per_request"] for v in values), 4),
                            "errors": sum(int(v["errors"]) for v in values),
                        }
                    summary["speedup"] = round(summary["on"]["req_per_s"]
                                               / max(summary["off"]["req_per_s"], 1), 2)
                    out["results"][f"{name}/{'GET stream' if kind == 'read' else 'rtc-token'}"] = summary
            finally:
                if schema is not None:
                    await drop_schema(schema)
    calibration = statistics.median(calibrations)
    out["calibration_loops_per_s"] = round(calibration)
    out["calibration_spread"] = [round(min(calibrations)), round(max(calibrations))]
    for summary in out["results"].values():
        for mode in ("on", "off"):
            summary[mode]["per_calibration"] = round(summary[mode]["req_per_s"] / calibration, 3)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgresql")
    result = asyncio.run(main(parser.parse_args()))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
