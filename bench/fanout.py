"""Fan-out benchmark of the realtime endpoint (issue 12 §3–4); prints JSON.

The server is a real ``onair serve`` pinned to core 0 (``taskset``, when there is one and more than
one core); this load generator pins itself to core 1. It is cheap per message so it is not the
bottleneck:
* raw asyncio protocols, no WebSocket library; client frames use the all-zero mask;
* every broadcast frame has exactly the same length (fixed-width timestamp and sequence), so every
  subscriber counts deliveries as ``bytes received / frame length`` without parsing, and a timing
  subscriber finds each frame's send timestamp at a fixed offset (no search, none skipped).

Latency is timed on **every delivery** of the timing subscribers, and those are spread evenly over
the join order: every subscriber times when the offered load is ≤ ``--timed-deliveries`` per
second (default 400k/s), else every k-th subscriber in join order (reported as ``timed_share``).
The hub writes members in a rotating order, so the join order must not matter: the spread of
per-subscriber mean latency (and the first vs last tenth in join order) is reported to show it.

Per run: deliveries/s, p50/p99/max over all timed deliveries, server CPU per delivery (the server
process and its workers, from /proc) and write syscalls per delivery (``/proc/<pid>/io``
syscw), the generator's own CPU. ``--runs`` repeats the run on the same server and reports the
median of each figure (and every run's p99). Then the same load runs against the calibration floor
(``bench/floor_server.py ws``: a minimal broadcast server on the same core) and
``ratio_to_floor`` compares server CPU per delivery, p99 and deliveries/s with it: the machine is
shared, the ratio is what compares across runs.

    python bench/fanout.py --subs 1000 --rate 100 --runs 3
    python bench/fanout.py --subs 5000 --rate 100 --runs 3
    python bench/fanout.py --subs 5000 --rate 20 --find-max
    python bench/fanout.py --subs 5000 --rate 50 --workers 2   # needs Redis (ONAIR_TEST_REDIS_URL)
    python bench/fanout.py --idle 10000 [--trace]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import math
import os
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import (
    children,
    free_port,
    pin_self,
    pinned,
    ratio,
    start_floor,
    stop,
    tree_cpu_seconds,
)

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

REDIS_URL = os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOPIC = "realtime:bench"
HANDSHAKE = (
    "GET /realtime/v1/websocket?apikey={key}&vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)
PAD = "x" * 150  # ~200-byte chat payloads


def client_frame(payload: bytes) -> bytes:
    """A masked text frame with the all-zero mask key (valid, and payload stays as is)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + payload


def message(seq: int, t: float) -> dict[str, str]:
    return {"t": f"{t:017.6f}", "s": f"{seq:010d}", "pad": PAD}


def server_body() -> bytes:
    return orjson.dumps([None, None, TOPIC, "broadcast", {"type": "broadcast", "event": "m", "payload": message(0, 0.0)}])


def server_frame_len() -> int:
    body = server_body()
    return len(body) + (2 if len(body) < 126 else 4)


FRAME_LEN = server_frame_len()
TS_OFFSET = FRAME_LEN - len(server_body()) + server_body().index(b'"t":"') + 5  # the send time in a frame


class Sub(asyncio.Protocol):
    """One subscriber. Counts bytes; a timing subscriber (``times`` is an array) also reads the
    send timestamp of every frame it receives, at its fixed offset, across reads."""

    join_payload: dict[str, object] = {"config": {"broadcast": {"self": False}, "presence": {"enabled": False}}}
    topic = TOPIC

    def __init__(self, times: array.array[float] | None) -> None:
        self.times = times
        self.ready = asyncio.get_running_loop().create_future()
        self.state = 0  # 0 handshake, 1 waiting for join reply, 2 counting
        self.buf = b""
        self.carry = b""  # a timing subscriber's partial frame
        self.bytes = 0
        self.bad = 0  # frames whose timestamp did not parse (misaligned: should stay 0)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:  # no Nagle: a lone small publish must not wait for an ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.state == 2:
            self.bytes += len(data)
            if self.times is not None:
                self.timestamps(data)
            return
        self.buf += data
        if self.state == 0 and b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            if b" 101 " not in head.split(b"\r\n")[0]:
                self.ready.set_exception(RuntimeError(head.decode(errors="replace")))
                return
            self.state, self.buf = 1, rest
            assert self.transport is not None
            join = ["1", "1", self.topic, "phx_join", self.join_payload]
            self.transport.write(client_frame(orjson.dumps(join)))
        if self.state == 1 and len(self.buf) >= 2:
            n = self.buf[1] & 0x7F
            size = 2 + n if n < 126 else 4 + struct.unpack("!H", self.buf[2:4])[0]
            if len(self.buf) >= size:
                rest = self.buf[size:]
                self.state, self.buf = 2, b""
                if not self.ready.done():
                    self.ready.set_result(None)
                if rest:
                    self.data_received(rest)

    def timestamps(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.carry + data if self.carry else data
        whole = len(buf) - len(buf) % FRAME_LEN
        append = self.times.append  # type: ignore[union-attr]
        for at in range(TS_OFFSET, whole, FRAME_LEN):
            try:
                append(now - float(buf[at:at + 17]))
            except ValueError:
                self.bad += 1
        self.carry = buf[whole:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed"))


class MarkerSub(Sub):
    """A postgres_changes subscriber (``--e2e``): frames vary in length, so deliveries are counted
    by a marker and timing subscribers search each read for the timestamp marker."""

    marker = b'"body":"t='
    count_marker = b'"postgres_changes"'

    def __init__(self, times: array.array[float] | None) -> None:
        super().__init__(times)
        self.count = 0

    def data_received(self, data: bytes) -> None:
        if self.state != 2:
            return super().data_received(data)
        self.bytes += len(data)
        self.count += data.count(self.count_marker)
        if self.times is not None:
            now = time.monotonic()
            marker, skip = self.marker, len(self.marker)
            pos = data.find(marker)
            while pos >= 0:
                try:
                    self.times.append(now - float(data[pos + skip:pos + skip + 17]))
                except ValueError:
                    self.bad += 1  # a timestamp split across reads
                pos = data.find(marker, pos + skip + 17)


async def connect_all(port: int, key: str, n: int, stride: int = 0, cls: type[Sub] = Sub) -> list[Sub]:
    """``n`` joined subscribers; every ``stride``-th in join order times its deliveries (0: none)."""
    loop = asyncio.get_running_loop()
    subs: list[Sub] = []
    request = HANDSHAKE.format(key=key).encode()
    for start in range(0, n, 250):
        batch = []
        for i in range(start, min(n, start + 250)):
            times = array.array("d") if stride and i % stride == 0 else None
            _, proto = await loop.create_connection(lambda times=times: cls(times), "127.0.0.1", port)
            proto.transport.write(request)  # type: ignore[union-attr]
            batch.append(proto)
        await asyncio.gather(*(p.ready for p in batch))
        subs.extend(batch)
    return subs


def write_syscalls(pid: int) -> int:
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                if line.startswith("syscw:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kb(pid: int) -> int:
    total = 0
    for p in [pid, *children(pid)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> float:
    return round(value * 1000, 2)


def latency_report(subs: list[Sub]) -> dict[str, Any]:
    """p50/p99/max over every timed delivery, and how per-subscriber means spread over join order."""
    timed = [s for s in subs if s.times is not None]
    every: list[float] = []
    for s in timed:
        every.extend(s.times)  # type: ignore[arg-type]
    every.sort()
    means = [statistics.fmean(s.times) if s.times else math.nan for s in timed]  # join order
    known = sorted(m for m in means if not math.isnan(m))
    tenth = max(1, len(means) // 10)
    first = [m for m in means[:tenth] if not math.isnan(m)]
    last = [m for m in means[-tenth:] if not math.isnan(m)]
    return {
        "timed_subscribers": len(timed), "timed_deliveries": len(every),
        "p50_ms": ms(percentile(every, 0.5)), "p99_ms": ms(percentile(every, 0.99)),
        "max_ms": ms(every[-1]) if every else math.nan,
        "subscriber_mean_ms": {"min": ms(known[0]) if known else math.nan,
                               "p50": ms(percentile(known, 0.5)),
                               "max": ms(known[-1]) if known else math.nan,
                               "first_tenth_joined": ms(statistics.fmean(first)) if first else math.nan,
                               "last_tenth_joined": ms(statistics.fmean(last)) if last else math.nan},
        "unparsed_timestamps": sum(s.bad for s in timed),
    }


def stride_for(subs_n: int, rate: int, timed_deliveries: int) -> int:
    return max(1, math.ceil(subs_n * rate / timed_deliveries))


async def run_fanout(port: int, key: str, pid: int, subs_n: int, rate: int, duration: float,
                     timed_deliveries: int) -> dict[str, Any]:
    stride = stride_for(subs_n, rate, timed_deliveries)
    subs = await connect_all(port, key, subs_n, stride)
    pub = (await connect_all(port, key, 1))[0]
    assert pub.transport is not None
    await asyncio.sleep(0.5)
    for s in subs:
        s.bytes = 0
        if s.times is not None:
            del s.times[:]
            s.carry = b""
    cpu0, sys0, gen0 = tree_cpu_seconds(pid), write_syscalls(pid), time.process_time()
    sent, start = 0, time.monotonic()
    tick = 0.001 if rate >= 1000 else 1.0 / rate
    while True:
        now = time.monotonic()
        if now - start >= duration:
            break
        due = int((now - start) * rate) + 1
        if due > sent:
            burst = b"".join(client_frame(orjson.dumps(["1", None, TOPIC, "broadcast", {"type": "broadcast", "event": "m", "payload": message(seq, time.monotonic())}]))
                             for seq in range(sent, due))
            pub.transport.write(burst)
            sent = due
        await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()) if rate < 1000 else tick)
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 5.0
    expected = sent * subs_n
    while time.monotonic() < deadline and sum(s.bytes for s in subs) < expected * FRAME_LEN:
        await asyncio.sleep(0.05)
    cpu1, sys1, gen1 = tree_cpu_seconds(pid), write_syscalls(pid), time.process_time()
    delivered = sum(s.bytes for s in subs) // FRAME_LEN
    for s in [*subs, pub]:
        if s.transport is not None:
            s.transport.close()
    await asyncio.sleep(0.3)
    return {
        "subscribers": subs_n, "rate_msgs_per_s": rate, "duration_s": round(elapsed, 2), "messages": sent,
        "deliveries_expected": expected, "deliveries": delivered, "lost": expected - delivered,
        "deliveries_per_s": round(delivered / elapsed), "timed_share": round(1 / stride, 3),
        **latency_report(subs),
        "server_cpu_s": round(cpu1 - cpu0, 2),
        "server_cpu_us_per_delivery": round((cpu1 - cpu0) / max(1, delivered) * 1e6, 3),
        "server_writes_per_delivery": round((sys1 - sys0) / max(1, delivered), 4),
        "generator_cpu_s": round(gen1 - gen0, 2),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the runs (nested dicts too); others from the first run."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = median_of([r[key] for r in runs])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in runs if not (isinstance(r[key], float) and math.isnan(r[key]))]
            mid = statistics.median(values) if values else math.nan
            out[key] = int(mid) if all(type(v) is int for v in values) and mid == int(mid) else round(mid, 3)
        else:
            out[key] = value
    return out


def repeat(runs: int, once: Any) -> dict[str, Any]:
    results = [once() for _ in range(runs)]
    summary = median_of(results)
    summary["runs"] = runs
    summary["p99_ms_each_run"] = [r["p99_ms"] for r in results]
    summary["lost_each_run"] = [r["lost"] for r in results]
    return summary


def floor_fanout(args: argparse.Namespace, rate: int) -> dict[str, Any]:
    """The same load against the bare broadcast server on the server's core."""
    port = free_port()
    proc = start_floor("ws", port, 0 if args.workers == 1 else None)
    try:
        return repeat(args.floor_runs or args.runs, lambda: asyncio.run(
            run_fanout(port, "floor", proc.pid, args.subs, rate, args.duration, args.timed_deliveries)))
    finally:
        stop(proc)


def with_floor(result: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    result["floor"] = {k: floor[k] for k in ("deliveries_per_s", "p50_ms", "p99_ms", "max_ms", "lost",
                                             "server_cpu_us_per_delivery", "server_writes_per_delivery")}
    result["floor"]["server"] = "bench/floor_server.py ws (bare broadcast, same core)"
    result["ratio_to_floor"] = {
        "server_cpu_per_delivery": ratio(result["server_cpu_us_per_delivery"], floor["server_cpu_us_per_delivery"]),
        "p99": ratio(result["p99_ms"], floor["p99_ms"]),
        "deliveries_per_s": ratio(result["deliveries_per_s"], floor["deliveries_per_s"]),
    }
    return result


async def run_e2e(port: int, key: str, pid: int, data_dir: str, subs_n: int, rate: int, duration: float,
                  timed_deliveries: int) -> dict[str, object]:
    """HTTP chat send → postgres_changes INSERT on chat_messages at every subscriber."""
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from onair.auth.jwt import mint_token
    from onair.auth.keys import load_or_create_secret

    secret = load_or_create_secret(Path(data_dir))
    base = f"http://127.0.0.1:{port}"
    seller = mint_token(secret, "bench-seller", "seller", 3600)
    buyers = [mint_token(secret, f"bench-buyer-{i}", "buyer", 3600) for i in range(50)]
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        stream = (await http.post("/api/v1/streams", json={"title": "bench"}, headers={"Authorization": f"Bearer {seller}"})).json()
        sid = stream["id"]
        await http.post(f"/api/v1/streams/{sid}/start", headers={"Authorization": f"Bearer {seller}"})
        MarkerSub.topic = f"realtime:stream:{sid}"
        MarkerSub.join_payload = {"config": {"postgres_changes": [
            {"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{sid}"}]}}
        subs: list[MarkerSub] = await connect_all(  # type: ignore[assignment]
            port, key, subs_n, stride_for(subs_n, rate, timed_deliveries), MarkerSub)
        await asyncio.sleep(1.0)
        for s in subs:
            s.count = 0
            if s.times is not None:
                del s.times[:]
        cpu0, sys0, gen0 = tree_cpu_seconds(pid), write_syscalls(pid), time.process_time()
        statuses: dict[int, int] = {}

        async def send(seq: int) -> None:
            body = {"body": f"t={time.monotonic():017.6f} " + "x" * 150, "client_msg_id": f"bench-{seq}"}
            r = await http.post(f"/api/v1/streams/{sid}/chat", json=body,
                                headers={"Authorization": f"Bearer {buyers[seq % len(buyers)]}"})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        sent, start, tasks = 0, time.monotonic(), []
        while time.monotonic() - start < duration:
            tasks.append(asyncio.create_task(send(sent)))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
        ok = statuses.get(201, 0)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and sum(s.count for s in subs) < ok * subs_n:
            await asyncio.sleep(0.05)
        cpu1, sys1, gen1 = tree_cpu_seconds(pid), write_syscalls(pid), time.process_time()
        delivered = sum(s.count for s in subs)
        for s in subs:
            if s.transport is not None:
                s.transport.close()
    return {
        "mode": "e2e chat: HTTP POST → postgres_changes", "subscribers": subs_n, "rate_msgs_per_s": rate,
        "duration_s": round(elapsed, 2), "http_statuses": statuses, "deliveries_expected": ok * subs_n,
        "deliveries": delivered, "lost": ok * subs_n - delivered, **latency_report(subs),  # type: ignore[arg-type]
        "server_cpu_s": round(cpu1 - cpu0, 2), "server_writes_per_delivery": round((sys1 - sys0) / max(1, delivered), 4),
        "generator_cpu_s": round(gen1 - gen0, 2),
    }




async def run_idle(port: int, key: str, pid: int, n: int, trace: Path | None) -> dict[str, Any]:
    await asyncio.sleep(0.5)
    if trace is not None:
        await snapshot(trace, "before")
    before = rss_kb(pid)
    subs = await connect_all(port, key, n)
    await asyncio.sleep(1.0)
    after = rss_kb(pid)
    result: dict[str, Any] = {"idle_connections": n, "rss_before_kb": before, "rss_after_kb": after,
                              "rss_per_connection_kb": round((after - before) / n, 2), "each_joined": TOPIC}
    if trace is not None:
        result["python_heap_per_connection"] = await snapshot(trace, "after", n)
    for s in subs:
        assert s.transport is not None
        s.transport.close()
    await asyncio.sleep(0.5)
    return result


async def snapshot(trace: Path, name: str, n: int = 0) -> dict[str, Any]:
    """Ask the traced server (bench/traced_serve.py) for a tracemalloc snapshot; compare it with
    the one named ``before``: bytes per connection by allocating line, largest first."""
    trigger = trace / name
    trigger.write_text("")
    deadline = time.monotonic() + 60
    while not (trace / f"{name}.snap").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    if not n:
        return {}
    import tracemalloc

    old = tracemalloc.Snapshot.load(str(trace / "before.snap"))
    new = tracemalloc.Snapshot.load(str(trace / "after.snap"))
    stats = new.compare_to(old, "lineno")
    total = sum(s.size_diff for s in stats)
    top = {f"{s.traceback[0].filename.split('site-packages/')[-1].split('/src/')[-1]}:{s.traceback[0].lineno}":
           round(s.size_diff / n) for s in stats[:25]}
    return {"total_bytes": round(total / n), "top_lines_bytes": top}


def start_server(port: int, data_dir: str, workers: int, trace: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "ONAIR_DATA_DIR": data_dir, "ONAIR_LOG_LEVEL": "warning", "ONAIR_PORT": str(port),
           "ONAIR_REALTIME_MAX_MESSAGES_PER_SECOND": "1000000", "ONAIR_HEARTBEAT_TIMEOUT": "600",
           "ONAIR_REALTIME_MAX_PENDING_BYTES": str(16 << 20),
           # every load-generator socket comes from 127.0.0.1 and one publisher sends it all
           "ONAIR_REALTIME_MAX_CONNECTIONS_PER_IP": "1000000",
           "ONAIR_REALTIME_USER_BYTES_PER_SECOND": str(1 << 30), "ONAIR_REALTIME_USER_BURST_BYTES": str(1 << 30),
           "ONAIR_REALTIME_TOPIC_BYTES_PER_SECOND": str(1 << 30), "ONAIR_REALTIME_TOPIC_BURST_BYTES": str(1 << 30)}
    env.pop("ONAIR_BROKER_URL", None)
    if workers > 1:  # several workers share broadcasts through the broker
        env["ONAIR_BROKER_URL"] = REDIS_URL
        env["ONAIR_BROKER_KEY_PREFIX"] = f"bench-{secrets.token_hex(4)}:"
    python = [sys.executable]
    if trace is not None:
        env["ONAIR_TRACE_DIR"] = str(trace)
        python += [str(Path(__file__).resolve().parent / "traced_serve.py")]
    else:
        python += ["-m", "onair"]
    cmd = [*pinned(0 if workers == 1 else None), *python, "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    key = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if "anon key" in line:
            key = line.split()[-1]
        if key:
            break
    if workers > 1:
        while len(children(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
    time.sleep(1.5)
    return proc, key


def machine(args: argparse.Namespace) -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "server": "core 0 (taskset)" if args.workers == 1 and pinned(0) else f"{args.workers} workers, unpinned",
            "generator": "core 1" if (os.cpu_count() or 1) > 1 else "shared core"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; figures are their median")
    parser.add_argument("--floor-runs", type=int, default=0, help="runs against the floor (default: --runs)")
    parser.add_argument("--no-floor", action="store_true", help="skip the calibration floor")
    parser.add_argument("--workers", type=int, default=1, help="onair serve --workers N (N > 1 uses Redis)")
    parser.add_argument("--timed-deliveries", type=int, default=400_000,
                        help="timed deliveries per second at most; past it every k-th subscriber in join order times")
    parser.add_argument("--find-max", action="store_true", help="raise the rate while p99 < 100 ms and nothing is lost")
    parser.add_argument("--idle", type=int, default=0, help="measure RSS of N idle joined connections instead")
    parser.add_argument("--trace", action="store_true", help="with --idle: tracemalloc the server, bytes per connection by line")
    parser.add_argument("--e2e", action="store_true", help="HTTP chat send → postgres_changes instead of broadcasts")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--nice", type=int, default=0,
                        help="nice value for server and generator (negative needs root): keeps other "
                             "jobs on a shared machine from stretching the latencies")
    args = parser.parse_args()
    pin_self(1)
    if args.nice:
        # With sched_autogroup (on by default) nice only ranks processes within one session, so
        # the benchmark takes its own session and sets that session's group nice (needs root);
        # the servers it starts inherit both.
        try:
            os.setsid()
        except PermissionError:
            pass  # already a session leader
        try:
            Path("/proc/self/autogroup").write_text(str(args.nice))
        except OSError:
            pass
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    if uvloop is not None:
        uvloop.install()
    with tempfile.TemporaryDirectory() as data_dir:
        trace = Path(data_dir) / "trace" if args.idle and args.trace else None
        if trace is not None:
            trace.mkdir()
        proc, key = start_server(args.port, data_dir, args.workers, trace)
        try:
            if args.idle:
                result = asyncio.run(run_idle(args.port, key, proc.pid, args.idle, trace))
                print(json.dumps({"bench": "fanout idle", **result, "machine": machine(args)}), flush=True)
                return
            if args.e2e:
                result = repeat(args.runs, lambda: asyncio.run(run_e2e(
                    args.port, key, proc.pid, data_dir, args.subs, args.rate, args.duration, args.timed_deliveries)))
                result["holds"] = result["lost"] == 0 and result["p99_ms"] < 100
                print(json.dumps({"bench": "fanout e2e", **result, "machine": machine(args)}), flush=True)
                return
            rate = args.rate
            results = []
            while True:
                result = repeat(args.runs, lambda rate=rate: asyncio.run(run_fanout(
                    args.port, key, proc.pid, args.subs, rate, args.duration, args.timed_deliveries)))
                result["holds"] = max(result["lost_each_run"]) == 0 and result["p99_ms"] < 100
                results.append(result)
                if not args.find_max or not result["holds"]:
                    break
                rate = int(rate * 1.5)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    for result in results:
        if not args.no_floor:
            with_floor(result, floor_fanout(args, result["rate_msgs_per_s"]))
        print(json.dumps({"bench": "fanout", "server_workers": args.workers, **result, "machine": machine(args)}),
              flush=True)


if __name__ == "__main__":
    main()
