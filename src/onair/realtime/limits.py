"""Per-connection limits of the realtime endpoint (values come from settings)."""

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
    filters: FilterLimits = field(default_factory=FilterLimits)


def over_rate(window_start: float, count: int, now: float) -> tuple[float, int]:
    """Fixed one-second windows: returns the (window start, count) after one more message."""
    if now - window_start >= 1.0:
        return now, 1
    return window_start, count + 1
