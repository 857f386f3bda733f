"""Token benchmark: prints one JSON object.

    python bench/tokens.py builder [--seconds 3]     # in-process AccessToken2 on one core
    python bench/tokens.py http [--seconds 5]        # `onair serve` (SQLite) on core 0,
                                                     # this load generator on core 1
    python bench/tokens.py limiter                   # the per-user issue limit alone, by the
                                                     # number of users in their window

Targets (issue 3): the in-process builder makes >= 50,000 RTC tokens/s on one core;
`POST /streams/{id}/rtc-token` serves >= 2,000 requests/s with p99 < 20 ms on the embedded
default (SQLite, in-memory broker).

The HTTP load generator is a few lines of raw HTTP/1.1 over keep-alive connections: it builds
each request once and only reads the status line and Content-Length of each response, so it
costs far less per request than the server it measures. Latency is measured from the time a
request was *scheduled* (open loop), so a stalled server cannot hide its queue.

Calibration (issue 12 §3; the machine is shared, so ratios compare across runs, raw rates do not):
``builder`` also measures HMAC-SHA256 signatures of a token-sized message per CPU second in the
same process (the primitive every token costs at least once) and reports ``ratio_to_floor``;
``http`` also measures a bare uvicorn ASGI endpoint on the same core with the same connections
(``bench/calibration.py``) and reports the closed-loop rate and server CPU per request as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
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
from collections.abc import Callable
from pathlib import Path

from onair.domain import accesstoken2 as at2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import calibrate_http
from calibration import ratio as ratio_of

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
BUILDER_TARGET = 50_000


def pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def rate(fn: Callable[[int], object], seconds: float) -> tuple[float, float]:
    """(calls per wall second, calls per CPU second) of fn(i) over `seconds`.

    The CPU-second figure is what one core can do; it stays meaningful when other processes
    share the machine (the wall figure then drops with our share of the core).
    """
    fn(0)  # warm caches (k1, packed app id) like a running server has them
    done, start, cpu_start = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for i in range(done, done + 2_000):
            fn(i)
        done += 2_000
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start), done / (time.process_time() - cpu_start)


def builder(seconds: float) -> dict[str, object]:
    issue_ts = int(time.time())
    channel = "stream-0192f4c8-7a1e-7cc3-b5a2-6d1f0e9a1b2c"

    def rtc(role: at2.RtcRole) -> Callable[[int], object]:
        def build(i: int) -> str:
            return at2.build_rtc_token(
                APP_ID, CERT, channel, 1_000_000 + i, role,
                token_expire=3600, privilege_expire=3600,
                issue_ts=issue_ts + i // 50_000, salt=1 + i % at2.MAX_SALT,
            )
        return build

    def rtm(i: int) -> str:
        return at2.build_rtm_token(
            APP_ID, CERT, f"user-{i}", expire=3600, issue_ts=issue_ts, salt=1 + i
        )

    sample = [rtc(at2.RtcRole.PUBLISHER)(i) for i in range(1_000)]

    def verify(i: int) -> object:
        return at2.verify_rtc(
            sample[i % 1_000], app_id=APP_ID, app_certificate=CERT, channel=channel,
            uid=1_000_000 + i % 1_000, now=issue_ts, required=at2.PUBLISHER_PRIVILEGES,
            canonical=True,
        )

    results = {
        "rtc_publisher": rate(rtc(at2.RtcRole.PUBLISHER), seconds),
        "rtc_subscriber": rate(rtc(at2.RtcRole.SUBSCRIBER), seconds),
        "rtm": rate(rtm, seconds),
        "verify_rtc": rate(verify, seconds),
    }
    out: dict[str, object] = {}
    for name, (wall, cpu) in results.items():
        out[f"{name}_per_s"] = round(wall)
        out[f"{name}_per_cpu_s"] = round(cpu)
    slowest = min(results["rtc_publisher"][1], results["rtc_subscriber"][1])
    key, msg = CERT.encode(), os.urandom(120)
    _, hmac_cpu = rate(lambda i: hmac.new(key, msg, hashlib.sha256).digest(), seconds)
    return {
        **out,
        "calibration": {"floor": "hmac-sha256 of 120 bytes, same process", "per_cpu_s": round(hmac_cpu)},
        "ratio_to_floor": {"rtc_publisher_per_cpu_s": ratio_of(results["rtc_publisher"][1], hmac_cpu),
                           "verify_rtc_per_cpu_s": ratio_of(results["verify_rtc"][1], hmac_cpu)},
        "token_chars": len(sample[0]),
        "load_average_1m": os.getloadavg()[0],
        "target_tokens_per_s": BUILDER_TARGET,
        "meets_target": slowest >= BUILDER_TARGET,
    }


# --- HTTP -----------------------------------------------------------------------------------

HTTP_RATE_TARGET = 2_000
HTTP_P99_TARGET_MS = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and counts replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def start_server(port: int, data_dir: Path, secret: str, core: int | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ONAIR_PORT": str(port),
        "ONAIR_DATA_DIR": str(data_dir),
        "ONAIR_JWT_SECRET": secret,
        "ONAIR_AGORA_APP_ID": APP_ID,
        "ONAIR_AGORA_APP_CERTIFICATE": CERT,
        "ONAIR_AGORA_TOKEN_RATE_LIMIT": "1000000/minute",
        "ONAIR_LOG_LEVEL": "warning",
        "ONAIR_REAPER_INTERVAL": "3600",
    }
    for name in ("ONAIR_DATABASE_URL", "ONAIR_BROKER_URL"):
        env.pop(name, None)  # the embedded default is what we measure
    preexec = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    return subprocess.Popen(
        [sys.executable, "-m", "onair", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec,
    )


async def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError("server exited: " + (proc.stderr.read().decode() if proc.stderr else ""))
        try:
            conn = await Connection.open(port)
            status, _ = await conn.send(http_request("GET", "/healthz", {}))
            conn.writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("server did not become ready")


async def prepare(port: int, secret: str, users: int) -> list[bytes]:
    from onair.auth.jwt import mint_token

    def auth(user: str, role: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(secret, user, role, 24 * 3600)}

    conn = await Connection.open(port)
    seller = auth("bench-seller", "seller")
    status, body = await conn.send(http_request(
        "POST", "/api/v1/streams", {**seller, "Content-Type": "application/json"},
        json.dumps({"title": "bench"}).encode()))
    assert status == 201, body
    stream_id = json.loads(body)["id"]
    status, body = await conn.send(http_request("POST", f"/api/v1/streams/{stream_id}/start", seller))
    assert status == 200, body
    path = f"/api/v1/streams/{stream_id}/rtc-token"
    requests = [http_request("POST", path, seller)]
    requests += [http_request("POST", path, auth(f"bench-buyer-{i}", "buyer")) for i in range(users)]
    # First contact allocates each user's uid; the steady state is users coming back.
    for request in requests:
        status, body = await conn.send(request)
        assert status == 200, body
    conn.writer.close()
    return requests


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of every thread of `pid` (Linux /proc), 0 elsewhere."""
    if pid is None or not os.path.isdir(f"/proc/{pid}/task"):
        return 0.0
    ticks = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def closed_loop(port: int, requests: list[bytes], connections: int,
                      seconds: float, pid: int | None = None) -> dict[str, float]:
    cpu_before = process_cpu_seconds(pid)
    conns = [await Connection.open(port) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection, offset: int) -> None:
        nonlocal errors
        i = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = await conn.send(requests[i % len(requests)])
            latencies.append(time.perf_counter() - started)
            errors += status != 200
            i += connections

    started = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - started
    cpu = process_cpu_seconds(pid) - cpu_before
    for c in conns:
        c.writer.close()
    latencies.sort()
    return {
        "connections": connections,
        "requests_per_s": round(len(latencies) / elapsed),
        "server_cpu_utilisation": round(cpu / elapsed, 2),
        "server_cpu_us_per_request": round(cpu / max(1, len(latencies)) * 1e6),
        "implied_requests_per_core_s": round(len(latencies) / cpu) if cpu else None,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "errors": errors,
    }


async def open_loop(port: int, requests: list[bytes], rate: float, seconds: float,
                    connections: int) -> dict[str, float]:
    """Send at a fixed rate; latency counts from the scheduled send time."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = await idle.get()
        status, _ = await conn.send(requests[i % len(requests)])
        latencies.append(time.perf_counter() - due)
        errors += status != 200
        idle.put_nowait(conn)

    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > 2.0:  # more than 2 s behind: the server cannot take this rate
            break
        tasks.append(asyncio.create_task(one(i, due)))
    done, pending = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    errors += len(pending)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().writer.close()
    latencies.sort()
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "errors": errors,
    }


def http(seconds: float, users: int, connections: int, rate: float) -> dict[str, object]:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_core = cores[0] if len(cores) > 1 else None
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[1]})
    secret = secrets.token_hex(32)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, Path(tmp), secret, server_core)
        try:
            async def run() -> dict[str, object]:
                await wait_ready(port, proc)
                requests = await prepare(port, secret, users)
                await closed_loop(port, requests, connections, 1.0)  # warm-up
                saturated = await closed_loop(port, requests, connections, seconds, proc.pid)
                paced = await open_loop(port, requests, rate, seconds, connections * 4)
                # And at 80 % of what the server just sustained: its latency when not saturated.
                sustainable = round(0.8 * float(saturated["requests_per_s"]))
                relaxed = await open_loop(port, requests, sustainable, seconds, connections * 4)
                return {"closed_loop": saturated, "open_loop": paced,
                        "open_loop_at_80pct_of_max": relaxed}

            result = asyncio.run(run())
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    paced = result["open_loop"]
    assert isinstance(paced, dict)
    saturated = result["closed_loop"]
    assert isinstance(saturated, dict)
    floor = calibrate_http(seconds, connections, 1, server_core)
    return {
        "endpoint": "POST /api/v1/streams/{id}/rtc-token",
        "database": "sqlite (embedded default)",
        "server_core": server_core,
        "users": users + 1,
        "load_average_1m": os.getloadavg()[0],
        **result,
        "calibration": floor,
        "ratio_to_floor": {
            "closed_loop_requests_per_s": ratio_of(saturated["requests_per_s"], floor["requests_per_s"]),
            "server_cpu_per_request": ratio_of(saturated["server_cpu_us_per_request"],
                                               floor["server_cpu_us_per_request"]),
        },
        "target": {"requests_per_s": HTTP_RATE_TARGET, "p99_ms": HTTP_P99_TARGET_MS},
        "meets_target": paced["achieved_per_s"] >= HTTP_RATE_TARGET * 0.98
        and paced["p99_ms"] < HTTP_P99_TARGET_MS and paced["errors"] == 0,
    }


def limiter(checks: int) -> dict[str, object]:
    """CPU per ``IssueLimiter.check`` (in-process limit, no Redis) with N users in their window,
    the event loop turning as a server's does (other tasks run between requests)."""
    from onair.problems import Problem
    from onair.services.tokens import IssueLimiter

    async def per_check(users: int) -> float:
        limit = IssueLimiter("60/minute", None)
        for user in range(users):
            await limit.check(f"user-{user}")
        started = time.process_time()
        for i in range(checks):
            try:  # with few users most checks are over the limit: refused checks cost the same
                await limit.check(f"user-{i % users}")
            except Problem:
                pass
            await asyncio.sleep(0)
        spent = time.process_time() - started
        await limit.close()
        return spent / checks * 1e6

    async def loop_turn() -> float:  # the floor: the same loop, no check
        started = time.process_time()
        for _ in range(checks):
            await asyncio.sleep(0)
        return (time.process_time() - started) / checks * 1e6

    floor = asyncio.run(loop_turn())
    by_users = {str(n): round(asyncio.run(per_check(n)), 2) for n in (100, 1_000, 10_000, 100_000)}
    return {"us_cpu_per_check_by_users_in_window": by_users,
            "calibration": {"floor": "one event-loop turn (asyncio.sleep(0))", "us": round(floor, 2)},
            "ratio_10k_to_100_users": round(by_users["10000"] / by_users["100"], 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("builder", help="in-process AccessToken2 builder on one core")
    b.add_argument("--seconds", type=float, default=3.0)
    h = sub.add_parser("http", help="POST /streams/{id}/rtc-token against `onair serve`")
    h.add_argument("--seconds", type=float, default=5.0)
    h.add_argument("--users", type=int, default=500)
    h.add_argument("--connections", type=int, default=16)
    h.add_argument("--rate", type=float, default=HTTP_RATE_TARGET)
    lim = sub.add_parser("limiter", help="the per-user issue limit alone, in-process")
    lim.add_argument("--checks", type=int, default=20_000)
    args = parser.parse_args(argv)

    result: dict[str, object] = {
        "benchmark": f"tokens.{args.mode}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    if args.mode == "builder":
        result["pinned_core"] = pin_to_one_core()
        result.update(builder(args.seconds))
    elif args.mode == "limiter":
        result.update(limiter(args.checks))
    else:
        result.update(http(args.seconds, args.users, args.connections, args.rate))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
