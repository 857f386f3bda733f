"""Micro-benchmark of the Redis broker: publish -> deliver throughput and latency between processes.

Method: this process (node A) publishes through ``RedisBroker``; a child process (node B, its own
event loop and RedisBroker) is subscribed and records, for every message, now minus the send time
carried in the payload (CLOCK_MONOTONIC is shared by processes on one machine), and checks that
sequence numbers arrive complete and in order. Payloads are ~200 bytes, like a chat row event.
Both processes use uvloop when installed, as ``onair serve`` does. Redis: ``ONAIR_BENCH_REDIS_URL``
or ``ONAIR_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).

Scenarios:
* ``saturate``: 1,000 concurrent publishers (as many connections sending at once would) publish
  as fast as the broker takes it -> publish rate, delivery rate, latency under saturation.
* ``paced_<rate>``: a steady rate, sent in small bursts about every millisecond -> latency at
  that load.
* ``ping_pong``: one message at a time, the next after the previous was acknowledged by Redis.

CPU time per message (``*_cpu_us_per_msg``, process time of each side) is reported next to the
rates because it barely depends on what else the machine is doing, while rates and latencies do
(``loadavg_1m_before`` says how busy it was). Prints one JSON object; ``--quick`` runs smaller
counts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import platform
import struct
import subprocess
import sys
import time
import uuid
from typing import Any

from onair.broker.redis import RedisBroker

URL = os.environ.get(
    "ONAIR_BENCH_REDIS_URL", os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
)
HEADER = struct.Struct("<qq")  # send time (ns, CLOCK_MONOTONIC), sequence number
PAYLOAD_SIZE = 200
END = -1


def _use_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    uvloop.install()
    return "uvloop"


def _now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index] / 1e6


# --- node B: the subscriber ----------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.expected_seq = 0
        self.out_of_order = 0
        self.first_ns = 0
        self.last_ns = 0
        self.cpu_start = 0.0
        self.total: int | None = None
        self.done = asyncio.Event()

    def on_message(self, topic: str, data: bytes) -> None:
        now = _now_ns()
        sent, seq = HEADER.unpack_from(data)
        if seq == END:
            self.total = sent
            self.done.set()
            return
        if not self.latencies:
            self.first_ns = now
            self.cpu_start = time.process_time()
        self.last_ns = now
        self.latencies.append(now - sent)
        if seq != self.expected_seq:
            self.out_of_order += 1
        self.expected_seq = seq + 1


async def subscriber(prefix: str, topic: str) -> None:
    receiver = Receiver()
    broker = RedisBroker(URL, key_prefix=prefix)
    await broker.start(receiver)
    await broker.subscribe(topic)
    print("ready", flush=True)
    await receiver.done.wait()
    cpu = time.process_time() - receiver.cpu_start
    await broker.close()
    lat = sorted(receiver.latencies)
    span = (receiver.last_ns - receiver.first_ns) / 1e9
    print(
        json.dumps(
            {
                "received": len(lat),
                "lost": (receiver.total or 0) - len(lat),
                "out_of_order": receiver.out_of_order,
                "deliver_rate_per_s": round(len(lat) / span) if span > 0 else None,
                "deliver_cpu_us_per_msg": round(cpu / len(lat) * 1e6, 1) if lat else None,
                "latency_ms": {
                    "p50": round(_percentile(lat, 0.50), 3),
                    "p99": round(_percentile(lat, 0.99), 3),
                    "max": round(lat[-1] / 1e6, 3) if lat else None,
                },
            }
        ),
        flush=True,
    )


# --- node A: the publisher -----------------------------------------------------------------------


def _payload(seq: int) -> bytes:
    return HEADER.pack(_now_ns(), seq) + b"x" * (PAYLOAD_SIZE - HEADER.size)


async def _start_subscriber(prefix: str, topic: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--subscriber", prefix, topic,
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    if line.strip() != b"ready":
        raise RuntimeError(f"subscriber did not start: {line!r}")
    return proc


async def _finish(
    proc: asyncio.subprocess.Process, broker: RedisBroker, topic: str, total: int
) -> dict[str, Any]:
    await broker.publish(topic, HEADER.pack(total, END) + b"")
    assert proc.stdout is not None
    out = await asyncio.wait_for(proc.stdout.read(), 60)
    await proc.wait()
    result: dict[str, Any] = json.loads(out)
    return result


async def saturate(broker: RedisBroker, prefix: str, n: int, senders: int) -> dict[str, Any]:
    """``senders`` concurrent publishers (think: connections broadcasting) share ``n`` messages."""
    topic = "bench:saturate"
    proc = await _start_subscriber(prefix, topic)
    counter = iter(range(n))

    async def sender() -> None:
        # taking a number and calling publish happen without an await in between, so sequence
        # numbers enter the broker in order and the subscriber can check the order
        for seq in counter:
            await broker.publish(topic, _payload(seq))

    start = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(sender() for _ in range(senders)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    result = await _finish(proc, broker, topic, n)
    return {
        "messages": n,
        "concurrent_publishers": senders,
        "publish_rate_per_s": round(n / elapsed),
        "publish_cpu_us_per_msg": round(cpu / n * 1e6, 1),
        **result,
    }


async def paced(
    broker: RedisBroker, prefix: str, rate: int, seconds: float, senders: int = 200
) -> dict[str, Any]:
    """``senders`` publishers take turns so that message ``seq`` goes out at ``seq / rate`` s."""
    topic = f"bench:paced{rate}"
    proc = await _start_subscriber(prefix, topic)
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    start = loop.time() + 0.05

    async def sender(first: int) -> None:
        for seq in range(first, total, senders):
            delay = start + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await broker.publish(topic, _payload(seq))

    cpu = time.process_time()
    await asyncio.gather(*(sender(i) for i in range(senders)))
    achieved = total / (loop.time() - start)
    cpu = time.process_time() - cpu
    result = await _finish(proc, broker, topic, total)
    # senders run concurrently, so neighbouring messages may enter out of sequence order: the
    # order check belongs to `saturate`; "lost" is exact
    result.pop("out_of_order")
    return {
        "target_rate_per_s": rate,
        "achieved_rate_per_s": round(achieved),
        "publish_cpu_us_per_msg": round(cpu / total * 1e6, 1),
        **result,
    }


async def ping_pong(broker: RedisBroker, prefix: str, n: int) -> dict[str, Any]:
    topic = "bench:pingpong"
    proc = await _start_subscriber(prefix, topic)
    for seq in range(n):
        await broker.publish(topic, _payload(seq))
    result = await _finish(proc, broker, topic, n)
    return {"messages": n, **result}


class _Ignore:
    def on_message(self, topic: str, data: bytes) -> None:
        pass


async def main(quick: bool) -> dict[str, Any]:
    prefix = f"onair-bench:{uuid.uuid4().hex}:"
    broker = RedisBroker(URL, key_prefix=prefix)
    await broker.start(_Ignore())
    try:
        await broker.ping()
    except Exception as exc:
        await broker.close()
        return {"skipped": f"Redis not reachable at {URL}: {exc}"}
    scale = 0.2 if quick else 1.0
    try:
        results: dict[str, Any] = {
            "saturate": await saturate(broker, prefix, int(200_000 * scale), senders=1000),
            "ping_pong": await ping_pong(broker, prefix, int(5_000 * scale)),
        }
        for rate in (5_000, 20_000, 50_000):
            results[f"paced_{rate}"] = await paced(broker, prefix, rate, 3.0 * scale)
    finally:
        await broker.close()
    return results


if __name__ == "__main__":
    loop_kind = _use_uvloop()
    if len(sys.argv) > 1 and sys.argv[1] == "--subscriber":
        asyncio.run(subscriber(sys.argv[2], sys.argv[3]))
        sys.exit(0)
    import redis

    report = {
        "benchmark": "broker",
        "redis_url": URL,
        "loop": loop_kind,
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "hiredis_parser": importlib.util.find_spec("hiredis") is not None,
        "loadavg_1m_before": round(os.getloadavg()[0], 2),  # other work on the machine skews this
        "cpus": os.cpu_count(),
        "payload_bytes": PAYLOAD_SIZE,
        "results": asyncio.run(main("--quick" in sys.argv)),
    }
    print(json.dumps(report, indent=2))
