"""In-process broker: the embedded default for a single onair process."""

from __future__ import annotations

from onair.broker.base import Broker, BrokerHandler, BrokerUnavailable


class MemoryBroker:
    """Delivers synchronously, in publish order, to the handler of this process."""

    def __init__(self) -> None:
        self._handler: BrokerHandler | None = None
        self._topics: set[str] = set()
        self._closed = False

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)

    async def publish(self, topic: str, data: bytes) -> None:
        if self._closed:
            raise BrokerUnavailable("broker is closed")
        if self._handler is not None and topic in self._topics:
            self._handler.on_message(topic, data)

    async def ping(self) -> None:
        if self._closed:
            raise BrokerUnavailable("broker is closed")

    async def close(self) -> None:
        self._closed = True

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._topics)


_: type[Broker] = MemoryBroker
