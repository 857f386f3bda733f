"""Token benchmark: prints one JSON object.

    python bench/tokens.py builder [--seconds 3]     # in-process AccessToken2 on one core

Target (issue 3): the in-process builder makes >= 50,000 RTC tokens/s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable

from onair.domain import accesstoken2 as at2

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
BUILDER_TARGET = 50_000


def pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def rate(fn: Callable[[int], object], seconds: float) -> float:
    """Calls/s of fn(i) over `seconds`, in batches so the clock is read rarely."""
    fn(0)  # warm caches (k1, packed app id) like a running server has them
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(done, done + 2_000):
            fn(i)
        done += 2_000
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


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
        "rtc_publisher_tokens_per_s": rate(rtc(at2.RtcRole.PUBLISHER), seconds),
        "rtc_subscriber_tokens_per_s": rate(rtc(at2.RtcRole.SUBSCRIBER), seconds),
        "rtm_tokens_per_s": rate(rtm, seconds),
        "verify_rtc_per_s": rate(verify, seconds),
    }
    best_rtc = min(results["rtc_publisher_tokens_per_s"], results["rtc_subscriber_tokens_per_s"])
    return {
        **{k: round(v) for k, v in results.items()},
        "token_chars": len(sample[0]),
        "target_tokens_per_s": BUILDER_TARGET,
        "meets_target": best_rtc >= BUILDER_TARGET,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("builder", help="in-process AccessToken2 builder on one core")
    b.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)

    core = pin_to_one_core()
    result: dict[str, object] = {
        "benchmark": f"tokens.{args.mode}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pinned_core": core,
    }
    result.update(builder(args.seconds))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
