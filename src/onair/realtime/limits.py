"""Limits of the realtime endpoint (values come from settings) and the byte budgets that keep one
sender from starving a topic."""

from __future__ import annotations

from dataclasses import dataclass, field

from onair.realtime.protocol.filters import FilterLimits


@dataclass(frozen=True, slots=True)
class RealtimeLimits:
    max_channels_per_connection: int = 100
    max_messages_per_second: int = 100
    max_payload_bytes: int = 262_144
    max_connections_per_user: int = 20
    heartbeat_timeout: float = 60.0
    max_pending_bytes: int = 1_048_576
    write_buffer_high_water: int = 262_144
    max_topic_bytes: int = 255
    max_join_bytes_per_connection: int = 262_144
    max_connections_per_ip: int = 100
    stream_max_payload_bytes: int = 32_768
    stream_max_presence_bytes: int = 2_048
    user_bytes_per_second: int = 65_536
    user_burst_bytes: int = 262_144
    topic_bytes_per_second: int = 131_072
    topic_burst_bytes: int = 524_288
    filters: FilterLimits = field(default_factory=FilterLimits)


def over_rate(window_start: float, count: int, now: float) -> tuple[float, int]:
    """Fixed one-second windows: returns the (window start, count) after one more message."""
    if now - window_start >= 1.0:
        return now, 1
    return window_start, count + 1


class ByteBudget:
    """Token buckets of bytes, one per key (a user, a topic): ``rate`` bytes/s refill up to
    ``burst``. Checked once per received frame, never per delivery. A key whose bucket has
    refilled is indistinguishable from a new one, so :meth:`prune` drops it: the map holds only
    keys that sent within the last ``burst / rate`` seconds."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[object, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: object, size: int, now: float) -> bool:
        """Spend ``size`` bytes of ``key``'s budget; False (nothing spent) when it lacks them."""
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if size > tokens:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - size, now)
        return True

    def refund(self, key: object, size: int) -> None:
        tokens, at = self._buckets.get(key, (self.burst, 0.0))
        self._buckets[key] = (min(self.burst, tokens + size), at)

    def prune(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
