"""Calibration figures measured in the same run as a benchmark (issue 12 §3); prints JSON.

The benchmarks run on a shared 2-core machine whose speed moves from minute to minute, so each
one reports its result next to a floor measured the same way, on the same core, in the same
run: ``ratio_to_floor`` is what compares across runs and machines, not the raw figures.

* HTTP floor (``bench/chat.py``, ``bench/tokens.py``): a bare uvicorn ASGI endpoint
  (``bench/floor_server.py http``: uvloop + httptools, reads the body, answers 201 with a
  content-length) driven by the same kind of raw keep-alive HTTP/1.1 client, closed loop.
* Fan-out floor (``bench/fanout.py``): ``bench/floor_server.py ws``, a minimal broadcast server,
  driven by the fan-out load generator itself.

    python bench/calibration.py [--seconds 4] [--connections 64] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def pinned(core: int | None) -> list[str]:
    """The ``taskset`` prefix that pins a command to ``core`` (nothing when it cannot)."""
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(core)]


def pin_self(core: int) -> bool:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of ``pid`` and its live children (the workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"floor server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                time.sleep(0.5)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("floor server did not start")


def start_floor(mode: str, port: int, core: int | None = None, workers: int = 1) -> subprocess.Popen[bytes]:
    cmd = [*pinned(core), sys.executable, str(BENCH / "floor_server.py"), mode, "--port", str(port),
           "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    if workers > 1:
        deadline = time.monotonic() + 15
        while len(children(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class _Http(asyncio.Protocol):
    """Keep-alive HTTP/1.1 client reading only each response's head and content-length."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        stop_at = head.find(b"\r\n", at)
        length = int(head[at + 15:stop_at if stop_at > 0 else len(head)]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[:end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


REQUEST_BODY = b'{"body":"Is the blue one still available in size M?","client_msg_id":"calibration-0001"}'
REQUEST = (b"POST /floor HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer x\r\ncontent-type: application/json\r\n"
           b"content-length: %d\r\n\r\n" % len(REQUEST_BODY)) + REQUEST_BODY


async def http_rate(port: int, seconds: float, connections: int) -> int:
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Http, "127.0.0.1", port))[1] for _ in range(connections)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(conn: _Http) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await conn.request(REQUEST) == 201:
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    return round(done / elapsed)


def calibrate_http(seconds: float = 4.0, connections: int = 64, workers: int = 1,
                   core: int | None = None) -> dict[str, Any]:
    """The bare uvicorn endpoint's request rate (closed loop) and its CPU per request."""
    port = free_port()
    proc = start_floor("http", port, core, workers)
    try:
        cpu0 = tree_cpu_seconds(proc.pid)
        rate = asyncio.run(http_rate(port, seconds, connections))
        cpu = tree_cpu_seconds(proc.pid) - cpu0
    finally:
        stop(proc)
    return {"floor": "bare uvicorn ASGI endpoint (bench/floor_server.py http)", "workers": workers,
            "pinned_core": core if pinned(core) else None, "connections": connections,
            "requests_per_s": rate,
            "server_cpu_us_per_request": round(cpu / max(1, rate * seconds) * 1e6, 1)}


def ratio(value: float, floor: float) -> float | None:
    return round(value / floor, 3) if floor else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--core", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    if args.workers == 1:
        pin_self(1)
    print(json.dumps(calibrate_http(args.seconds, args.connections, args.workers,
                                    args.core if args.workers == 1 else None)), flush=True)


if __name__ == "__main__":
    main()
