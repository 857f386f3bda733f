"""`bench/frames.py`'s tap path runs the real server code it claims to measure: every viewer joins
through `RealtimeSocket`, and every tap fed to it is counted by the reaction service (the bench
asserts that itself; this keeps the benchmark from rotting between `make bench` runs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "frames.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_frames", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_frames", module)
    spec.loader.exec_module(module)
    return module


async def test_the_tap_path_counts_every_tap_of_every_viewer() -> None:
    bench = load_bench()
    result = await bench.tap_path_us(viewers=12, rounds=2, taps_per_viewer=3)
    assert result["tap_path_viewers"] == 12
    assert len(result["tap_path_us_each_round"]) == 2
    assert result["tap_path_us_per_tap"] > 0
