"""Telemetry benchmark: what one playback report costs the server. Prints one JSON object.

    python bench/telemetry.py [--runs 5] [--seconds 0.5]

In process, on one core: the service path (``TelemetryService.record``: budget take, orjson
parse, checks, counting) for a typical 8-event batch and a full 64-event one, the refusals
(rate-limited before the body is read, malformed JSON, over the process budget), and the whole
request through the app (``POST /api/v1/telemetry`` over httpx's in-process ASGI transport:
middleware, routing, auth, problem+json). Each figure is the median of ``--runs`` runs, also
given as a ratio to a calibration loop measured in the same run (a fixed pure-Python workload),
so numbers from a shared or slower machine compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson

from onair.domain.playback import ReportRejected
from onair.services.telemetry import TelemetryService
from onair.settings import Settings

TYPICAL = {"page": "watch", "events": [
    {"kind": "start"}, {"kind": "first_frame", "seconds": 1.2},
    {"kind": "rtt", "seconds": 0.031}, {"kind": "rtt", "seconds": 0.045},
    {"kind": "layer", "layer": "low"}, {"kind": "stall", "seconds": 0.7},
    {"kind": "video_problem", "problem": "black"}, {"kind": "reconnect", "link": "realtime"}]}
FULL = {"page": "watch", "events": [{"kind": "rtt", "seconds": 0.03 + i / 1000}
                                    for i in range(64)]}


def pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    """Microseconds of CPU per call of ``fn``, over about ``seconds``."""
    n, batch = 0, 64
    start = time.process_time()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        spent = time.process_time() - start
        if spent >= seconds:
            return spent / n * 1e6


def drive(coroutine: Coroutine[Any, Any, object]) -> None:
    """Run a coroutine that never suspends (the in-memory limiter) without an event loop turn."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("the coroutine suspended")


def calibration() -> None:
    total = 0
    for i in range(2000):
        total += i * i % 7


def unlimited(**extra: object) -> Settings:
    return Settings(_env_file=None, telemetry_max_reports_per_second=1e9,  # type: ignore[arg-type]
                    telemetry_rate_per_second=1e9, telemetry_rate_burst=10**9, **extra)


def service_figures(seconds: float) -> dict[str, float]:
    service = TelemetryService(unlimited())
    typical, full = orjson.dumps(TYPICAL), orjson.dumps(FULL)
    figures = {
        "calibration_us": per_call_us(calibration, seconds),
        "record_8_events_us": per_call_us(lambda: service.record(typical), seconds),
        "record_64_events_us": per_call_us(lambda: service.record(full), seconds),
    }

    def malformed() -> None:
        try:
            service.record(b'{"page":"watch","events":[{"kind":"nope"}]}')
        except ReportRejected:
            pass

    figures["refuse_invalid_us"] = per_call_us(malformed, seconds)
    limited = TelemetryService(Settings(_env_file=None, telemetry_rate_per_second=0.001,
                                        telemetry_rate_burst=1))
    drive(limited.admit("ip:x"))
    figures["refuse_rate_limited_us"] = per_call_us(lambda: drive(limited.admit("ip:x")), seconds)
    busy = TelemetryService(Settings(_env_file=None, telemetry_max_reports_per_second=0.001))
    busy.record(typical)
    figures["drop_overloaded_us"] = per_call_us(lambda: busy.record(full), seconds)
    return figures


def http_figures(seconds: float) -> dict[str, float]:
    import httpx

    from onair.app import create_app

    async def run() -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:
            settings = unlimited(data_dir=Path(tmp), jwt_secret="bench-" + "x" * 40,
                                 log_level="warning")
            app = create_app(settings, run_reaper=False)
            body = orjson.dumps(TYPICAL)
            async with app.router.lifespan_context(app), httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
                async def post() -> None:
                    response = await client.post("/api/v1/telemetry", content=body,
                                                 headers={"content-type": "application/json"})
                    assert response.status_code == 202, response.text

                async def baseline() -> None:  # the same transport for a request doing nothing
                    response = await client.get("/healthz")
                    assert response.status_code == 200

                out = {}
                for name, call in (("http_report_8_events_us", post),
                                   ("http_healthz_us", baseline)):
                    n, start = 0, time.process_time()
                    while time.process_time() - start < seconds:
                        for _ in range(32):
                            await call()
                        n += 32
                    out[name] = (time.process_time() - start) / n * 1e6
                return out

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    core = pin_to_one_core()
    from onair.logs import configure_logging

    configure_logging("warning")  # one access log line per request would be most of the cost
    runs = [{**service_figures(args.seconds), **http_figures(args.seconds)}
            for _ in range(args.runs)]
    median = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    ratios = {key.replace("_us", "_per_calibration"):
              round(statistics.median(run[key] / run["calibration_us"] for run in runs), 3)
              for key in runs[0] if key != "calibration_us"}
    print(json.dumps({
        "benchmark": "telemetry", "runs": args.runs, "core": core,
        "python": platform.python_version(), "median_cpu_us": median,
        "median_ratio_to_calibration": ratios,
        "per_event_us_in_64_batch": round(median["record_64_events_us"] / 64, 3),
        "note": "CPU time per call on one core; the machine may be shared (compare the ratios)",
    }, indent=2))


if __name__ == "__main__":
    main()
