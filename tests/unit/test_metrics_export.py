"""The scrape-time copy of plain counters into Prometheus families (onair/metrics/export.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from onair.metrics.export import Exporter
from onair.metrics.families import Metrics
from onair.tally import SECONDS, Tally, bump


def samples(registry: CollectorRegistry) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value for family in registry.collect()
            for s in family.samples if not s.name.endswith("_created")}


@given(st.lists(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=20),
                max_size=5))
def test_a_tally_copied_in_steps_equals_observing_directly(steps: list[list[float]]) -> None:
    """Property: however the observations are split between scrapes, the exported histogram
    is the one prometheus-client would have built by observing each value (pins the use of
    the histogram's bucket values in Exporter.tally)."""
    tally = Tally(SECONDS)
    copied_registry, direct_registry = CollectorRegistry(), CollectorRegistry()
    copied = Histogram("h_seconds", "h", registry=copied_registry, buckets=SECONDS)
    direct = Histogram("h_seconds", "h", registry=direct_registry, buckets=SECONDS)
    exporter = Exporter(Metrics())
    for step in steps:
        for value in step:
            tally.observe(value)
            direct.observe(value)
        exporter.tally(copied, tally)
        got, want = samples(copied_registry), samples(direct_registry)
        assert got.keys() == want.keys()
        for key in want:
            assert abs(got[key] - want[key]) < 1e-6, key


def test_tally_buckets_include_their_bound() -> None:
    tally = Tally((1, 2))
    for value in (0.5, 1, 1.5, 2, 3):
        tally.observe(value)
    assert tally.counts == [2, 2, 1] and tally.count == 5 and tally.sum == 8


def test_counts_are_copied_once_and_a_restarted_source_keeps_the_counter_monotonic() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["reason"], registry=registry)
    exporter = Exporter(Metrics())
    plain: dict[str, int] = {}
    bump(plain, "a")
    bump(plain, "a")
    bump(plain, "b", 3)
    exporter.count_each(counter, plain)
    exporter.count_each(counter, plain)  # a second scrape adds nothing new
    assert counter.labels("a")._value.get() == 2 and counter.labels("b")._value.get() == 3
    plain["a"] = 1  # the source started again from 0 (a new object)
    exporter.count_each(counter, plain)
    assert counter.labels("a")._value.get() == 3
    assert b'c_total{reason="a"} 3.0' in generate_latest(registry)


def test_label_values_are_bounded_and_known_up_front() -> None:
    """Every labelled family starts with its known values, and no label names a user, a
    stream or a topic."""
    metrics = Metrics()
    for family in metrics.registry.collect():
        for sample in family.samples:
            assert not {"user", "user_id", "stream", "stream_id", "topic"} & sample.labels.keys()
    text = generate_latest(metrics.registry).decode()
    assert 'onair_realtime_joins_refused_total{reason="unauthorized"} 0.0' in text
    assert 'onair_chat_sends_total{outcome="slow-mode"} 0.0' in text
