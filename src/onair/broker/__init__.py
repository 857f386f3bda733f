"""Brokers carry events between onair processes (see base.py)."""

from __future__ import annotations

from onair.broker.base import Broker


def create_broker(url: str | None) -> Broker:
    """In-memory broker for None/`memory://`; Redis for `redis://` and `rediss://` URLs."""
    if url is None or url in ("", "memory://"):
        from onair.broker.memory import MemoryBroker

        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from onair.broker.redis import RedisBroker  # type: ignore[import-not-found,unused-ignore]

        broker: Broker = RedisBroker(url)
        return broker
    raise ValueError(f"unsupported broker URL: {url!r} (use redis://… or leave it unset)")
