"""In-process broker: the embedded default for a single onair process.

Brokers built on one ``MemoryBus`` see each other's publishes, like processes on one Redis; tests
use that to run several "nodes" in one event loop. Without a bus each broker has its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from onair.broker.base import Broker, BrokerHandler, BrokerUnavailable

log = logging.getLogger(__name__)


class MemoryBus:
    """What Redis is to RedisBrokers: every broker on the bus receives every publish."""

    def __init__(self) -> None:
        self.brokers: list[MemoryBroker] = []


class MemoryBroker:
    """Delivers synchronously, in publish order, to the handlers of the brokers on its bus."""

    def __init__(self, bus: MemoryBus | None = None) -> None:
        self._handler: BrokerHandler | None = None
        self._topics: set[str] = set()
        self._closed = False
        self._bus = bus if bus is not None else MemoryBus()
        self._bus.brokers.append(self)

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)

    async def publish_many(self, topic: str, items: Sequence[bytes]) -> None:
        for data in items:
            await self.publish(topic, data)

    async def publish(self, topic: str, data: bytes) -> None:
        if self._closed:
            raise BrokerUnavailable("broker is closed")
        for broker in tuple(self._bus.brokers):
            if broker._handler is not None and topic in broker._topics:
                try:
                    broker._handler.on_message(topic, data)
                except Exception:  # as with Redis: a consumer's bug is not the publisher's error
                    log.exception("broker handler failed on topic %s", topic)

    async def ping(self) -> None:
        if self._closed:
            raise BrokerUnavailable("broker is closed")

    async def close(self) -> None:
        self._closed = True
        if self in self._bus.brokers:
            self._bus.brokers.remove(self)

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._topics)


_: type[Broker] = MemoryBroker
