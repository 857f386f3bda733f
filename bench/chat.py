"""Chat benchmark: prints one JSON object.

    python bench/chat.py [--db sqlite|postgresql|both] [--workers N] [--seconds S]

For each database it starts `onair serve --workers N` (default: 1 on SQLite, 2 on PostgreSQL;
more than one worker runs on Redis, as it must: ONAIR_TEST_REDIS_URL), creates a live stream
and measures over HTTP:

* ``service_in_process``: the same senders calling ChatService.send in this process, no HTTP:
  what the group commit alone sustains (and its mean batch size).
* ``throughput``: many concurrent senders (closed loop, keep-alive connections, one user per
  connection) for ``--seconds``; persisted messages/s is counted from the rows in the database
  afterwards (and checked: seqs 1..n, no gaps, one row per 201). Target ≥ 5,000/s.
* ``latency_at_1000``: an open-loop load of 1,000 sends/s; latency is measured from the moment
  each request was *scheduled*, so a stalled server cannot hide its queue. Target p99 < 50 ms.
* ``history`` / ``resync``: a 1,000-message page (``before_seq`` newest first, ``after_seq``
  oldest first), as the query alone and as the full HTTP request, with the query plan
  (``EXPLAIN QUERY PLAN`` / ``EXPLAIN ANALYZE``). Target < 20 ms.

The load generator speaks raw HTTP/1.1: each request is one bytes object and only the status
line and Content-Length of each response are read, so it costs far less per request than the
server it measures. The send rate limit is raised for the run (ONAIR_CHAT_RATE_* env): this
measures the write path, not the limiter.

Calibration (issue 12 §3): the machine is shared, so next to each backend's throughput the same
client drives a bare uvicorn ASGI endpoint with as many workers (``bench/calibration.py``), in
the same run; ``ratio_to_floor`` gives the send rate and server CPU per send relative to it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from onair.auth.jwt import mint_token
from onair.domain.identity import Role

sys.path.insert(0, str(ROOT / "bench"))
from calibration import calibrate_http, ratio

SECRET = "bench-secret-" + secrets.token_hex(16)
READ_SAMPLES = 100  # per read path: enough for a p99 that is not just the maximum
REDIS_URL = os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("ONAIR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


# --- the server ------------------------------------------------------------------------------


class Servers:
    """`onair serve --workers N` as users run it; with more than one worker, on Redis."""

    def __init__(self, database_url: str, workers: int) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="onair-bench-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "ONAIR_DATA_DIR": str(self.data_dir),
            "ONAIR_DATABASE_URL": database_url,
            "ONAIR_JWT_SECRET": SECRET,
            "ONAIR_LOG_LEVEL": "warning",
            "ONAIR_CHAT_RATE_BURST": "1000000",
            "ONAIR_CHAT_RATE_PER_SECOND": "1000000",
        }
        self.env.pop("ONAIR_BROKER_URL", None)
        if workers > 1:  # what several workers need (events, presence, limits shared)
            self.env["ONAIR_BROKER_URL"] = REDIS_URL
            self.env["ONAIR_BROKER_KEY_PREFIX"] = f"bench-{secrets.token_hex(4)}:"
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "onair", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(self._pids()) >= self.workers:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        time.sleep(1.0)  # let every worker finish its startup
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("onair did not start")

    def _pids(self) -> list[int]:
        """The serving processes: the workers, or `onair serve` itself when it has none."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == self.process.pid:
                    children.append(int(entry.name))
        return children

    def cpu_seconds(self) -> float:
        """User+system CPU the server processes have used so far (from /proc)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self._pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- the load generator --------------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """Keep-alive HTTP/1.1 client that returns only each response's status code."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.keep_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0
                          else len(head)]) if at >= 0 else 0
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(self.buffer[9:12])
        body = bytes(self.buffer[end + 4 : total]) if self.keep_body else b""
        del self.buffer[:total]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def connect(port: int) -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HttpConnection, "127.0.0.1", port)
    return protocol


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: bench"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def bearer(user: str, role: Role) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(SECRET, user, role, 3600)}"}


def send_request(stream_id: str, auth: dict[str, str], user: str, n: int) -> bytes:
    body = b'{"body":"Is the blue one still available in size M?","client_msg_id":"%s-%d"}' % (
        user.encode(), n)
    return http_request("POST", f"/api/v1/streams/{stream_id}/chat", auth, body)


async def create_live_stream(port: int) -> str:
    conn = await connect(port)
    conn.keep_body = True
    auth = bearer("bench-seller", Role.SELLER)
    status, body = await conn.request(
        http_request("POST", "/api/v1/streams", auth, b'{"title":"bench"}'))
    assert status == 201, body
    stream_id = orjson.loads(body)["id"]
    status, body = await conn.request(
        http_request("POST", f"/api/v1/streams/{stream_id}/start", auth))
    assert status == 200, body
    assert conn.transport is not None
    conn.transport.close()
    return str(stream_id)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    values = sorted(latencies)
    return {f"p{int(q * 100)}_ms": round(percentile(values, q) * 1000, 2)
            for q in (0.5, 0.9, 0.99)} | {"max_ms": round(values[-1] * 1000, 2) if values else 0}


async def closed_loop(port: int, stream_id: str, connections: int, seconds: float) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        conn = await connect(port)
        user = f"tp{index}-{secrets.token_hex(3)}"
        auth = bearer(user, Role.BUYER)
        n = 0
        while time.perf_counter() < deadline:
            data = send_request(stream_id, auth, user, n)
            n += 1
            started = time.perf_counter()
            status, _ = await conn.request(data)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        assert conn.transport is not None
        conn.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    return {"connections": connections, "seconds": round(elapsed, 2),
            "responses": statuses, "created_per_s": round(statuses.get(201, 0) / elapsed),
            "latency": latency_summary(latencies)}


async def open_loop(port: int, stream_id: str, rate: float, connections: int,
                    seconds: float) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    interval = connections / rate
    start = time.perf_counter() + 0.2

    async def client(index: int) -> None:
        conn = await connect(port)
        user = f"ol{index}-{secrets.token_hex(3)}"
        auth = bearer(user, Role.BUYER)
        count = int(seconds / interval)
        for n in range(count):
            scheduled = start + index * interval / connections + n * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, _ = await conn.request(send_request(stream_id, auth, user, n))
            latencies.append(time.perf_counter() - scheduled)
            statuses[status] = statuses.get(status, 0) + 1
        assert conn.transport is not None
        conn.transport.close()

    await asyncio.gather(*(client(i) for i in range(connections)))
    return {"target_per_s": rate, "connections": connections, "seconds": seconds,
            "responses": statuses, "latency": latency_summary(latencies)}


# --- database checks and read paths --------------------------------------------------------


async def check_rows(database_url: str, stream_id: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from onair.store.db import Database
    from onair.store.tables import chat_messages, stream_sessions

    db = Database(database_url)
    try:
        async with db.read() as conn:
            count, low, high = (await conn.execute(
                select(func.count(), func.min(chat_messages.c.seq), func.max(chat_messages.c.seq))
                .where(chat_messages.c.stream_id == stream_id))).one()
            last = (await conn.execute(select(stream_sessions.c.last_chat_seq).where(
                stream_sessions.c.id == stream_id))).scalar_one()
    finally:
        await db.close()
    return {"rows": count, "gapless": count == 0 or (low == 1 and high == count == last)}


async def read_paths(database_url: str, port: int, stream_id: str) -> dict[str, Any]:
    from onair.store import chat as store
    from onair.store.db import Database

    # As `onair serve` does after startup (OnairServer): what this process built so far is out of
    # the collector's sight, so a full collection of the load phase's leftovers does not land
    # inside a timed page read.
    gc.collect()
    gc.freeze()
    db = Database(database_url)
    out: dict[str, Any] = {}
    cursors: dict[str, int] = {}
    if db.dialect == "postgresql":  # what autovacuum does soon after a burst of inserts
        async with db.write() as conn:
            await conn.exec_driver_sql("ANALYZE chat_messages")
    try:
        async with db.read() as conn:
            total = (await store.get_stream(conn, stream_id)).last_chat_seq  # type: ignore[union-attr]
            size = min(1000, total)
            for name, backwards in (("history", True), ("resync", False)):
                # A full page from the middle of the stream when it is long enough.
                cursor = (min(total, total // 2 + 500) + 1) if backwards else max(0, total // 2 - 500)
                cursors[name] = cursor
                query = (store.history_query(stream_id, cursor, 1000) if backwards
                         else store.resync_query(stream_id, cursor, 1000))
                sql = str(query.compile(conn.sync_connection,
                                        compile_kwargs={"literal_binds": True}))
                prefix = ("EXPLAIN (ANALYZE, BUFFERS) " if db.dialect == "postgresql"
                          else "EXPLAIN QUERY PLAN ")
                plan_rows = (await conn.exec_driver_sql(prefix + sql)).all()
                plan = [" | ".join(str(c) for c in row) for row in plan_rows]
                timings = []
                cpu = time.process_time()
                for _ in range(READ_SAMPLES):
                    started = time.perf_counter()
                    rows = (await store.page_before(conn, stream_id, cursor, 1000)
                            if backwards else
                            await store.page_after(conn, stream_id, cursor, 1000))
                    timings.append(time.perf_counter() - started)
                cpu = (time.process_time() - cpu) / READ_SAMPLES
                assert len(rows) == size, (len(rows), size)
                out[name] = {"query": latency_summary(timings),
                             "query_cpu_ms": round(cpu * 1000, 2), "plan": plan}
    finally:
        await db.close()
    conn_http = await connect(port)
    conn_http.keep_body = True
    for name, param in (("history", f"before_seq={cursors['history']}"),
                        ("resync", f"after_seq={cursors['resync']}")):
        data = http_request("GET", f"/api/v1/streams/{stream_id}/chat?{param}&limit=1000", {})
        timings = []
        for _ in range(READ_SAMPLES):
            started = time.perf_counter()
            status, body = await conn_http.request(data)
            timings.append(time.perf_counter() - started)
            assert status == 200 and len(orjson.loads(body)["messages"]) == size
        out[name]["http"] = latency_summary(timings)
    assert conn_http.transport is not None
    conn_http.transport.close()
    out["messages_in_stream"] = total
    out["page_size"] = size
    return out


async def service_only(database_url: str, senders: int, seconds: float) -> dict[str, Any]:
    """The write path without HTTP: concurrent senders calling ChatService.send in-process.

    Separates what the group commit can do from what the web stack costs per request."""
    from onair.app import build_context, start_context, stop_context
    from onair.domain.identity import Principal
    from onair.domain.streams import Action
    from onair.settings import Settings

    settings = Settings(data_dir=tempfile.mkdtemp(prefix="onair-bench-svc-"),
                        database_url=database_url, jwt_secret=SECRET, log_level="warning",
                        chat_rate_burst=1_000_000, chat_rate_per_second=1_000_000)
    ctx = build_context(settings)
    await start_context(ctx, reaper=False)
    try:
        seller = Principal("bench-seller", Role.SELLER)
        stream = await ctx.streams.create(seller, "bench")
        await ctx.streams.act(seller, stream.id, Action.START)
        deadline = time.perf_counter() + seconds
        latencies: list[float] = []

        async def sender(index: int) -> None:
            user = Principal(f"svc{index}", Role.BUYER)
            n = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await ctx.chat.send(user, stream.id, "Is the blue one still available?", f"s{n}")
                latencies.append(time.perf_counter() - started)
                n += 1

        batches_before = ctx.chat.batches
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(sender(i) for i in range(senders)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        batches = ctx.chat.batches - batches_before
        return {"senders": senders, "seconds": round(elapsed, 2),
                "persisted_per_s": round(len(latencies) / elapsed),
                "cpu_us_per_message": round(cpu / max(len(latencies), 1) * 1e6),
                "mean_batch": round(len(latencies) / max(batches, 1), 1),
                "latency": latency_summary(latencies)}
    finally:
        await stop_context(ctx)


async def run_backend(name: str, database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    result_service = await service_only(database_url, args.connections, args.seconds / 2)
    workers = args.workers or (1 if name == "sqlite" else 2)
    servers = Servers(database_url, workers)
    servers.start()
    try:
        result: dict[str, Any] = {"database": name, "server_workers": workers,
                                  "service_in_process": result_service}
        stream_id = await create_live_stream(servers.port)
        cpu_before, load_cpu_before = servers.cpu_seconds(), time.process_time()
        throughput = await closed_loop(servers.port, stream_id, args.connections, args.seconds)
        server_cpu = servers.cpu_seconds() - cpu_before
        load_cpu = time.process_time() - load_cpu_before
        rows = await check_rows(database_url, stream_id)
        throughput["server_cpu_s"] = round(server_cpu, 2)
        throughput["server_cpu_us_per_message"] = round(server_cpu / max(rows["rows"], 1) * 1e6)
        throughput["load_generator_cpu_us_per_message"] = round(load_cpu / max(rows["rows"], 1) * 1e6)
        throughput["persisted_per_s"] = round(rows["rows"] / throughput["seconds"])
        throughput["rows"] = rows
        throughput["target_per_s"] = 5000
        throughput["ok"] = rows["gapless"] and throughput["persisted_per_s"] >= 5000
        result["throughput"] = throughput

        latency_stream = await create_live_stream(servers.port)
        latency = await open_loop(servers.port, latency_stream, 1000.0, 50, args.latency_seconds)
        latency["ok"] = latency["latency"]["p99_ms"] < 50
        result["latency_at_1000"] = latency

        reads = await read_paths(database_url, servers.port, stream_id)
        for key in ("history", "resync"):
            reads[key]["ok"] = (reads[key]["query"]["p99_ms"] < 20
                                and reads[key]["http"]["p99_ms"] < 20)
        result["reads"] = reads
        return result
    finally:
        servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=0,
                        help="server processes (default: 1 on SQLite, whose writers would "
                        "queue on the file lock, 2 on PostgreSQL)")
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    for backend in backends:
        if backend == "sqlite":
            url = f"sqlite:///{tempfile.mkdtemp(prefix='onair-bench-db-')}/onair.db"
        else:
            url = PG_URL
        result = asyncio.run(run_backend(backend, url, args))
        floor = calibrate_http(args.seconds / 2, args.connections, result["server_workers"])
        throughput = result["throughput"]
        result["calibration"] = floor
        result["ratio_to_floor"] = {
            "sends_per_s": ratio(throughput["persisted_per_s"], floor["requests_per_s"]),
            "server_cpu_per_send": ratio(throughput["server_cpu_us_per_message"], floor["server_cpu_us_per_request"]),
        }
        results.append(result)
    print(json.dumps({
        "benchmark": "chat",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
