"""Prometheus metrics of one app instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("onair_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "onair_http_request_duration_seconds", "HTTP request latency by route",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.errors = Counter("onair_http_errors_total", "HTTP 5xx responses by route",
                              ["route"], registry=self.registry)
        self.streams = Gauge("onair_streams", "Streams by status", ["status"],
                             registry=self.registry)
        self.viewers = Gauge("onair_active_viewers", "Viewers present in live or paused streams",
                             registry=self.registry)
        self.events_published = Gauge("onair_events_published", "Events published to the broker",
                                      registry=self.registry)
        self.events_failed = Gauge("onair_events_failed", "Events the broker refused",
                                   registry=self.registry)

        # labels() takes a lock and builds a key on every call; the children are looked up once.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)),
                        self.latency.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 500:
            self.errors.labels(route).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
