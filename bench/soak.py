"""Soak: does memory, and do the tables, stay flat while streams come and go? Prints one JSON object.

    python bench/soak.py [--db sqlite|postgresql] [--seconds 300] [--loops 4] [--viewers 5]

Starts `onair serve` (one process) with a short reaper interval and short retention graces,
then for ``--seconds`` runs ``--loops`` concurrent stream lifecycles, over and over: a seller
creates and starts a stream; viewers (new users every time) open realtime sockets and join its
channel (chat inserts + presence), join as viewers, get an RTC token and chat; half the sockets
drop and come back (rejoin); half the viewers leave; the seller ends the stream and every socket
gets the channel's close, then disconnects.

Every ``--sample`` seconds it records the server's RSS and open file descriptors, the row count
of every table, and the number of series `/metrics` exposes. The summary gives each series'
least-squares slope per minute over the run after ``--warmup`` seconds (retention needs its
graces to pass before the tables can plateau), first/last/max, and what the load did.

Flat means: RSS slope a small fraction of RSS per minute (allocator noise), table slopes near
zero once retention caught up (chat is deleted after ONAIR_CHAT_RETENTION_DAYS, set short here),
metric series bounded (no per-stream or per-user labels).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from onair.auth.jwt import mint_key, mint_token

SECRET = "soak-secret-" + secrets.token_hex(16)
PG_URL = os.environ.get("ONAIR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
TABLES = ("stream_sessions", "stream_transitions", "stream_viewers", "stream_cohosts",
          "chat_messages", "chat_sanctions", "agora_tokens", "stream_uids", "leases")
GRACE = 20.0  # seconds: token, viewer and roster retention graces during the soak
CHAT_DAYS = 30.0 / 86400  # chat of streams ended 30 s ago is deleted
CACHES = ("JWT_CACHE_SIZE", "AGORA_UID_CACHE_SIZE", "REALTIME_POLICY_CACHE_SIZE", "CHAT_RATE_TRACKED_USERS")
CACHE_BOUND = 200


class Server:
    def __init__(self, db: str) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="onair-soak-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.schema = f"soak_{secrets.token_hex(4)}" if db == "postgresql" else None
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ONAIR_")},
            "PYTHONPATH": str(ROOT / "src"),
            "ONAIR_DATA_DIR": str(self.data_dir),
            "ONAIR_JWT_SECRET": SECRET,
            "ONAIR_LOG_LEVEL": "warning",
            "ONAIR_AGORA_APP_ID": APP_ID,
            "ONAIR_AGORA_APP_CERTIFICATE": CERT,
            "ONAIR_AGORA_TOKEN_TTL": "60",
            "ONAIR_AGORA_PRIVILEGE_TTL": "60",
            "ONAIR_AGORA_TOKEN_RATE_LIMIT": "1000000/minute",
            "ONAIR_REALTIME_MAX_CONNECTIONS_PER_IP": "100000",
            "ONAIR_REAPER_INTERVAL": "2",
            "ONAIR_RETENTION_TOKEN_GRACE": str(GRACE),
            "ONAIR_RETENTION_VIEWER_GRACE": str(GRACE),
            "ONAIR_RETENTION_ROSTER_GRACE": str(GRACE),
            "ONAIR_CHAT_RETENTION_DAYS": repr(CHAT_DAYS),
            # The in-process LRU caches keyed by user or stream fill up to their bounds as users
            # churn (10,000 verified tokens, 100,000 uids, ...); small bounds here make them fill
            # within the warm-up, so what still grows afterwards is a leak, not a cache.
            **{f"ONAIR_{name}": str(CACHE_BOUND) for name in CACHES},
        }
        if self.schema is not None:
            self.env["ONAIR_DATABASE_URL"] = PG_URL
            self.env["ONAIR_DATABASE_SCHEMA"] = self.schema
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.schema is not None:
            asyncio.run(self._pg(f'CREATE SCHEMA "{self.schema}"'))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "onair", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("onair did not start")

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.schema is not None:
            asyncio.run(self._pg(f'DROP SCHEMA "{self.schema}" CASCADE'))
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @staticmethod
    async def _pg(sql: str) -> Any:
        import asyncpg

        conn = await asyncpg.connect(PG_URL)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def fds(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    async def table_rows(self) -> dict[str, int]:
        if self.schema is None:
            db = sqlite3.connect(f"file:{self.data_dir / 'onair.db'}?mode=ro", uri=True, timeout=30)
            try:
                return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
            finally:
                db.close()
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{self.schema}\".{t}" for t in TABLES)
        return {row[0]: int(row[1]) for row in await self._pg(sql)}


class Load:
    def __init__(self, port: int, viewers: int) -> None:
        self.port = port
        self.viewers = viewers
        self.run = secrets.token_hex(3)
        self.anon = mint_key(SECRET, "anon", 10 * 365 * 24 * 3600)  # the default anon_key_ttl
        self.counts = {"streams": 0, "sockets": 0, "rejoins": 0, "chat": 0, "tokens": 0,
                       "channel_closes": 0, "errors": 0}
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30)
        self.ws_url = f"ws://127.0.0.1:{port}/realtime/v1/websocket?apikey={self.anon}&vsn=2.0.0"
        self.tokens: dict[str, str] = {}  # user -> JWT, as a client keeps its session

    def token(self, user: str, role: str = "buyer") -> str:
        token = self.tokens.get(user)
        if token is None:
            token = self.tokens[user] = mint_token(SECRET, user, role, 3600)
        return token

    async def call(self, method: str, path: str, user: str, role: str = "buyer", **kw: Any) -> Any:
        r = await self.http.request(method, path, headers={"authorization": f"Bearer {self.token(user, role)}"}, **kw)
        if r.status_code >= 300:
            self.counts["errors"] += 1
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")
        return r.json() if r.content else None

    async def join(self, sid: str, user: str) -> Any:
        ws = await websockets.connect(self.ws_url)
        self.counts["sockets"] += 1
        topic = f"realtime:stream:{sid}"
        config = {"private": True, "presence": {"key": user},
                  "postgres_changes": [{"event": "*", "schema": "public", "table": "chat_messages",
                                        "filter": f"stream_id=eq.{sid}"}]}
        await ws.send(json.dumps(["1", "1", topic, "phx_join", {"config": config, "access_token": self.token(user)}]))
        await self.until(ws, lambda m: m[3] == "phx_reply" and m[1] == "1" and m[4]["status"] == "ok")
        return ws

    async def until(self, ws: Any, pred: Any, timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                msg = json.loads(await ws.recv())
                if pred(msg):
                    return msg

    async def lifecycle(self, loop: int, n: int) -> None:
        tag = f"{self.run}-{loop}-{n}"
        seller = f"soak-seller-{tag}"
        sid = (await self.call("POST", "/streams", seller, "seller", json={"title": f"soak {tag}"}))["id"]
        await self.call("POST", f"/streams/{sid}/start", seller, "seller")
        self.counts["streams"] += 1
        users = [f"soak-buyer-{tag}-{i}" for i in range(self.viewers)]
        sockets = {u: await self.join(sid, u) for u in users}
        try:
            for u in users:
                await self.call("POST", f"/streams/{sid}/viewers", u)
                await self.call("POST", f"/streams/{sid}/rtc-token", u, json={})
                self.counts["tokens"] += 1
            await self.call("POST", f"/streams/{sid}/heartbeat", seller, "seller")
            for i, u in enumerate(users):
                for k in range(2):
                    await self.call("POST", f"/streams/{sid}/chat", u,
                                    json={"body": f"hello {i}.{k}", "client_msg_id": f"{u}-{k}"})
                    self.counts["chat"] += 1
            for u in users[: len(users) // 2]:  # sockets churn: drop and come back
                await sockets[u].close()
                sockets[u] = await self.join(sid, u)
                self.counts["rejoins"] += 1
            for u in users[len(users) // 2:]:
                await self.call("DELETE", f"/streams/{sid}/viewers/me", u)
            await self.call("POST", f"/streams/{sid}/end", seller, "seller")
            topic = f"realtime:stream:{sid}"
            for ws in sockets.values():
                await self.until(ws, lambda m: m[2] == topic and m[3] == "phx_close")
                self.counts["channel_closes"] += 1
        finally:
            for ws in sockets.values():
                await ws.close()
            for u in [seller, *users]:
                self.tokens.pop(u, None)

    async def loop(self, loop: int, until: float) -> None:
        n = 0
        while time.monotonic() < until:
            try:
                await self.lifecycle(loop, n)
            except Exception as exc:  # counted and reported; the soak goes on
                self.counts["errors"] += 1
                print(f"soak: loop {loop}: {type(exc).__name__}: {exc}", file=sys.stderr)
                await asyncio.sleep(1)
            n += 1


async def metric_series(port: int) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if var == 0 else 60 * sum((t - mx) * (v - my) for t, v in points) / var


def summarize(samples: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    late = [s for s in samples if s["t"] >= warmup] or samples
    keys = ["rss_kib", "fds", "metric_series"] + [f"rows.{t}" for t in TABLES]

    def value(s: dict[str, Any], key: str) -> float:
        return float(s["rows"][key[5:]] if key.startswith("rows.") else s[key])

    return {key: {"first": value(samples[0], key), "last": value(samples[-1], key),
                  "max": max(value(s, key) for s in samples),
                  "slope_per_min_after_warmup": round(slope_per_minute([(s["t"], value(s, key)) for s in late]), 2)}
            for key in keys}


async def soak(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load = Load(server.port, args.viewers)
    start = time.monotonic()
    until = start + args.seconds
    samples: list[dict[str, Any]] = []

    async def sampler() -> None:
        while True:
            samples.append({"t": round(time.monotonic() - start, 1), "rss_kib": server.rss_kib(),
                            "fds": server.fds(), "rows": await server.table_rows(),
                            "metric_series": await metric_series(server.port), "load": dict(load.counts)})
            if time.monotonic() >= until:
                return
            await asyncio.sleep(args.sample)

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*(load.loop(i, until) for i in range(args.loops)))
    await asyncio.sleep(max(0.0, args.sample - (time.monotonic() - start - samples[-1]["t"])))
    await sampling
    await load.http.aclose()
    return {"samples": samples, "summary": summarize(samples, args.warmup), "load": load.counts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--loops", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=5)
    parser.add_argument("--sample", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=90,
                        help="seconds before the slopes are taken (retention graces: 20-60 s)")
    args = parser.parse_args()
    server = Server(args.db)
    server.start()
    try:
        result = asyncio.run(soak(server, args))
    finally:
        server.stop()
    print(json.dumps({"bench": "soak", "db": args.db, "seconds": args.seconds, "loops": args.loops,
                      "viewers": args.viewers, "python": platform.python_version(),
                      "cpus": os.cpu_count(), "note": "machine shared with other jobs",
                      "settings": {"retention_graces_s": GRACE, "chat_retention_s": CHAT_DAYS * 86400,
                                   "reaper_interval_s": 2, "agora_token_ttl_s": 60,
                                   "cache_bounds": dict.fromkeys(CACHES, CACHE_BOUND)},
                      **result}))


if __name__ == "__main__":
    main()
