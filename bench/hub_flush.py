"""Sans-I/O microbenchmark of ``Hub.flush`` (issue 12 §4); prints one JSON object per scenario.

No sockets, no event loop: N clients whose transports are sinks (``write`` appends to nothing
but a C-level no-op), one topic, one broadcast per flush.
What is left is the hub's own Python work per member per flush — the part issue 12 §4 says
stands between a pass over 5,000 sockets and the targets. Reported as ns of this thread's CPU
time per member per flush (lower is better; CPU time, so waiting for a shared core does not
count); the kernel's share of a real write is not in it (see bench/fanout.py).

Calibration: the same sinks called in a bare loop (``for write in writes: write(blob)``), the
least any Python fan-out can do per member, measured in the same run; ``ratio_to_floor`` is the
hub's cost over it.

Scenarios: ``plain`` (a server broadcast: everyone gets it), ``sender`` (a user broadcast whose
sender is skipped: the chat case), ``mixed`` (half the members on each serializer, a sender
skipped), ``partial`` (5 % of members lack a read right on a private channel).

    python bench/hub_flush.py [--members 5000] [--flushes 400] [--runs 5]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from onair.realtime.client import Client
from onair.realtime.hub import Hub
from onair.realtime.protocol.connection import ConnectionProtocol
from onair.realtime.protocol.join import JoinConfig
from onair.realtime.protocol.serializer import SERIALIZERS

TOPIC = "realtime:bench"
PAYLOAD = {"t": "0000000000.000000", "s": "0000000000", "pad": "x" * 150}


class SinkTransport:
    """The part of a transport the hub uses; writes go nowhere. ``write`` is a C-level callable
    (a zero-length deque's append), like uvloop's ``transport.write``, so a Python-level sink
    does not dominate what is measured."""

    __slots__ = ("write",)

    def __init__(self) -> None:
        self.write = collections.deque(maxlen=0).append

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def build(members: int, scenario: str) -> tuple[Hub, list[Client]]:
    pending: list[Any] = []
    hub = Hub(pending.append)
    clients = []
    for i in range(members):
        vsn = "1.0.0" if scenario == "mixed" and i % 2 else "2.0.0"
        client = Client(ConnectionProtocol(SERIALIZERS[vsn], 0.0), SinkTransport(), None, 1 << 30, hub.overflow)
        hub.connect(client)
        partial = scenario == "partial" and i % 20 == 0
        hub.join(client, TOPIC, "1", JoinConfig(), reads_presence=not partial)
        clients.append(client)
    return hub, clients


def measure(members: int, flushes: int, scenario: str) -> float:
    hub, clients = build(members, scenario)
    sender = clients[len(clients) // 2] if scenario in ("sender", "mixed") else None
    for _ in range(20):  # warm-up: caches, frames
        hub.broadcast(TOPIC, "m", PAYLOAD, sender=sender)
        hub.flush()
    started = time.thread_time_ns()
    for _ in range(flushes):
        hub.broadcast(TOPIC, "m", PAYLOAD, sender=sender)
        hub.flush()
    elapsed = time.thread_time_ns() - started
    return elapsed / (flushes * members)


def floor(members: int, flushes: int) -> float:
    writes = [SinkTransport().write for _ in range(members)]
    blob = b"x" * 230
    started = time.thread_time_ns()
    for _ in range(flushes):
        for write in writes:
            write(blob)
    return (time.thread_time_ns() - started) / (flushes * members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--flushes", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", action="append", choices=["plain", "sender", "mixed", "partial"])
    args = parser.parse_args()
    for scenario in args.scenario or ["plain", "sender", "mixed", "partial"]:
        runs, floors = [], []
        for _ in range(args.runs):
            runs.append(measure(args.members, args.flushes, scenario))
            floors.append(floor(args.members, args.flushes))
        ns, floor_ns = statistics.median(runs), statistics.median(floors)
        print(json.dumps({
            "bench": "hub_flush", "scenario": scenario, "members": args.members, "flushes": args.flushes,
            "runs": args.runs, "ns_per_member_per_flush": round(ns, 1),
            "min_ns": round(min(runs), 1), "max_ns": round(max(runs), 1),
            "floor_ns_per_member": round(floor_ns, 1), "ratio_to_floor": round(ns / floor_ns, 2),
        }), flush=True)


if __name__ == "__main__":
    main()
