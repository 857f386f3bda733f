"""Reaction-storm benchmark (issue 14); prints JSON.

A real ``onair serve`` pinned to core 0 (SQLite, in-memory broker); this generator on core 1.
``--viewers`` signed-in viewers (one user each) join one live stream and each taps a reaction
``--rate`` times a second with a random phase (5,000 × 1/s is the issue's target). The server
counts the taps into one ``reactions`` aggregate per window, so every viewer receives a few small
messages a second, whatever the number of tappers. Reported:

* ``aggregates_per_s``: aggregates one viewer received per second (target ≤ 4 with 250 ms);
* ``p50_ms``/``p99_ms``: tap → aggregate at *every* viewer. One probe viewer taps ``clap`` every
  ``--probe-every`` seconds while everyone else taps the other kinds, so the first aggregate
  carrying a ``clap`` after a probe is the one carrying that tap (target p99 ≤ 400 ms);
* ``lost``: taps sent minus taps counted in the aggregates viewer 0 received (should be 0; the
  rate stays below the per-user limit);
* ``server_cpu_us_per_tap``: the server's CPU time over the run (reading the taps, counting,
  and the aggregates' fan-out to every viewer) divided by the taps (target ≤ 30 µs), and
  ``server_cpu_us_per_tap_over_baseline``: the same minus a baseline phase with the same fan-out
  (one viewer tapping 4/s) but no storm — what a tap itself costs;
* ``calibration_us`` and ``cpu_per_tap_calibration_ratio``: a fixed pure-Python workload timed
  in the same run, so results from a loaded or different machine can be compared by the ratio.

    python bench/reactions.py --viewers 5000 --rate 1 --duration 20 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from calibration import tree_cpu_seconds as cpu_seconds
from fanout import HANDSHAKE, Sub, client_frame, percentile, start_server

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

OTHER_KINDS = ("heart", "fire", "laugh", "wow")
PROBE = b'"clap":'
AGGREGATE = b'"event":"reactions"'


class Probe:
    """When the probe tap was sent (None between probes) and the latencies seen."""

    def __init__(self) -> None:
        self.sent_at: float | None = None
        self.seq = 0
        self.latencies: list[float] = []


class Viewer(Sub):
    """fanout.Sub's handshake and join; then counts aggregates, times probes, and viewer 0
    decodes every aggregate to check the counts."""

    join_payload: ClassVar[dict[str, object]] = {"config": {"presence": {"enabled": False}}}

    def __init__(self, topic: str, probe: Probe, parse: bool) -> None:
        super().__init__(None)
        self.topic = topic
        self.probe = probe
        self.parse = parse
        self.counted: dict[str, int] = {}
        self.aggregates = 0
        self.seen_probe = 0

    def data_received(self, data: bytes) -> None:
        if self.state != 2:
            super().data_received(data)
            return
        self.aggregates += data.count(AGGREGATE)
        probe = self.probe
        if probe.sent_at is not None and self.seen_probe < probe.seq and PROBE in data:
            self.seen_probe = probe.seq
            probe.latencies.append(time.monotonic() - probe.sent_at)
        if self.parse:
            self._decode(data)

    def _decode(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 2:
            n = self.buf[1] & 0x7F
            head = 2 if n < 126 else 4 if n == 126 else 10
            size = n if n < 126 else int.from_bytes(self.buf[2:head], "big")
            if len(self.buf) < head + size:
                return
            body, self.buf = self.buf[head:head + size], self.buf[head + size:]
            msg = orjson.loads(body)
            if msg[3] == "broadcast" and msg[4].get("event") == "reactions":
                for kind, count in msg[4]["payload"]["counts"].items():
                    self.counted[kind] = self.counted.get(kind, 0) + count



def tap(topic: str, kind: str) -> bytes:
    return client_frame(orjson.dumps(["1", None, topic, "broadcast",
                                      {"type": "broadcast", "event": "react", "payload": {"kind": kind}}]))


async def server_aggregates(base: str) -> float:
    """The server's own count of aggregates it broadcast (its /metrics)."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("onair_reactions_aggregates_total"):
            return float(line.split()[-1])
    return 0.0


def calibrate(rounds: int = 5, n: int = 20_000) -> float:
    """µs per iteration of a fixed pure-Python workload (JSON round trip and dict counting), the
    median of ``rounds``: the unit the CPU per tap is compared with."""
    doc = {"counts": {"heart": 3, "fire": 1}, "total": 4, "window_ms": 250}
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        acc: dict[str, int] = {}
        for i in range(n):
            d = orjson.loads(orjson.dumps(doc))
            for k, v in d["counts"].items():
                acc[k] = acc.get(k, 0) + v + (i & 1)
        times.append((time.process_time() - t0) / n * 1e6)
    return statistics.median(times)


async def run(port: int, data_dir: str, pid: int, viewers_n: int, rate: float, duration: float,
              probe_every: float, baseline: float = 5.0) -> dict[str, object]:
    import httpx

    from onair.auth.jwt import mint_token
    from onair.auth.keys import load_or_create_secret

    secret = load_or_create_secret(Path(data_dir))
    base = f"http://127.0.0.1:{port}"
    seller = mint_token(secret, "bench-seller", "seller", 7200)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        sid = (await http.post("/api/v1/streams", json={"title": "storm"},
                               headers={"Authorization": f"Bearer {seller}"})).json()["id"]
        await http.post(f"/api/v1/streams/{sid}/start", headers={"Authorization": f"Bearer {seller}"})
    topic = f"realtime:stream:{sid}"
    loop = asyncio.get_running_loop()
    probe = Probe()
    viewers: list[Viewer] = []
    connect_start = time.monotonic()
    for start in range(0, viewers_n + 1, 250):
        batch = []
        for i in range(start, min(viewers_n + 1, start + 250)):
            token = mint_token(secret, f"bench-viewer-{i}", "buyer", 7200)
            _, proto = await loop.create_connection(lambda i=i: Viewer(topic, probe, i == 0), "127.0.0.1", port)
            proto.transport.write(HANDSHAKE.format(key=token).encode())  # type: ignore[union-attr]
            batch.append(proto)
        await asyncio.gather(*(p.ready for p in batch))
        viewers.extend(batch)
    connect_s = time.monotonic() - connect_start
    prober, tappers = viewers[-1], viewers[:-1]
    frames = [tap(topic, kind) for kind in OTHER_KINDS]
    probe_frame = tap(topic, "clap")
    await asyncio.sleep(1.0)
    # each tapper gets a random phase within the period; a tick sends the taps that are due
    period = 1.0 / rate
    phase = sorted((random.random() * period, i) for i in range(len(tappers)))
    # baseline: the same fan-out (one viewer tapping 4/s keeps every window's aggregate going to
    # every viewer) without the storm, so the storm's extra CPU per tap can be told apart
    base_cpu0, b0 = cpu_seconds(pid), time.monotonic()
    beats = 0
    while time.monotonic() - b0 < baseline:
        if prober.transport is not None:
            prober.transport.write(frames[beats & 3])
        beats += 1
        await asyncio.sleep(max(0.0, b0 + beats * 0.25 - time.monotonic()))
    baseline_cpu_per_s = (cpu_seconds(pid) - base_cpu0) / max(1e-9, time.monotonic() - b0)
    await asyncio.sleep(1.0)
    for v in viewers:
        v.aggregates, v.counted = 0, {}
    sent = probes = 0
    emitted0 = await server_aggregates(base)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    gen0 = time.process_time()
    next_probe = t0 + 0.5
    cycle = 0
    while True:
        now = time.monotonic()
        if now - t0 >= duration:
            break
        cycle_start = t0 + cycle * period
        for offset, i in phase:
            at = cycle_start + offset
            if at - time.monotonic() > 0.002:
                await asyncio.sleep(at - time.monotonic())
            if time.monotonic() - t0 >= duration:
                break
            tr = tappers[i].transport
            if tr is not None:
                tr.write(frames[(i + cycle) & 3])
                sent += 1
            if time.monotonic() >= next_probe and prober.transport is not None:
                probe.seq += 1
                probe.sent_at = time.monotonic()
                prober.transport.write(probe_frame)
                probes += 1
                sent += 1
                next_probe = probe.sent_at + probe_every
        cycle += 1
    elapsed = time.monotonic() - t0
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and sum(viewers[0].counted.values()) < sent:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    cpu = cpu_seconds(pid) - cpu0
    gen = time.process_time() - gen0
    emitted = await server_aggregates(base) - emitted0
    counted = sum(viewers[0].counted.values())
    aggregates = [v.aggregates for v in viewers]
    for v in viewers:
        if v.transport is not None:
            v.transport.close()
    await asyncio.sleep(0.3)
    lat = sorted(probe.latencies)  # percentile() reads a sorted list
    return {
        "viewers": viewers_n, "rate_per_viewer": rate, "duration_s": round(elapsed, 2), "connect_s": round(connect_s, 1),
        "taps_sent": sent, "taps_per_s": round(sent / elapsed), "taps_counted_at_viewer0": counted,
        "lost": sent - counted, "probes": probes,
        "server_aggregates_per_s": round(emitted / elapsed, 2),
        "aggregates_per_s": round(statistics.median(aggregates) / elapsed, 2),
        "aggregates_per_s_max": round(max(aggregates) / elapsed, 2),
        "latency_samples": len(lat), "expected_latency_samples": probes * (viewers_n + 1),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 1), "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
        "max_ms": round(max(lat, default=float("nan")) * 1000, 1),
        "server_cpu_s": round(cpu, 2), "server_cpu_share": round(cpu / elapsed, 3),
        "server_cpu_us_per_tap": round(cpu / max(1, sent) * 1e6, 2),
        "baseline_cpu_share": round(baseline_cpu_per_s, 3),
        "server_cpu_us_per_tap_over_baseline": round(max(0.0, cpu - baseline_cpu_per_s * elapsed) / max(1, sent) * 1e6, 2),
        "generator_cpu_s": round(gen, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1.0, help="taps per second per viewer")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--probe-every", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=1, help="runs (a fresh server each); the summary is their median")
    parser.add_argument("--port", type=int, default=18766)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    if uvloop is not None:
        uvloop.install()
    results = []
    for _ in range(args.runs):
        calibration = calibrate()
        with tempfile.TemporaryDirectory() as data_dir:
            proc, _key = start_server(args.port, data_dir, 1)
            try:
                result = asyncio.run(run(args.port, data_dir, proc.pid, args.viewers, args.rate, args.duration,
                                         args.probe_every))
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        result["calibration_us"] = round(calibration, 3)
        result["cpu_per_tap_calibration_ratio"] = round(result["server_cpu_us_per_tap"] / calibration, 2)  # type: ignore[operator]
        result["holds"] = (result["aggregates_per_s_max"] <= 4.0 and result["p99_ms"] <= 400  # type: ignore[operator]
                           and result["lost"] == 0 and result["server_cpu_us_per_tap_over_baseline"] <= 30)  # type: ignore[operator]
        print(json.dumps(result), flush=True)
        results.append(result)
    if len(results) > 1:
        keys = ["aggregates_per_s_max", "p50_ms", "p99_ms", "server_cpu_us_per_tap",
                "server_cpu_us_per_tap_over_baseline", "calibration_us",
                "cpu_per_tap_calibration_ratio", "taps_per_s", "lost"]
        summary = {"summary": f"median of {len(results)} runs", "viewers": args.viewers,
                   **{k: statistics.median(float(r[k]) for r in results) for k in keys},  # type: ignore[arg-type]
                   "holds_all": all(r["holds"] for r in results)}
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
