"""The Broker interface: how onair processes exchange events.

Modelled on centrifuge's Broker: a small interface, one implementation per file, and the broker
reaches the rest of the process only through the handler it was given at ``start`` (never by
import). Payloads are opaque bytes; topics are plain strings such as ``stream:{id}``.

Ordering contract: messages published by one process on one topic are delivered to every
subscriber in publish order. Services rely on it for per-stream event order (chat ``seq``).

Subscription contract: a message published after ``subscribe`` returned is delivered; after
``unsubscribe`` returns nothing more is delivered for that topic, so a message still in flight
then may be dropped. Delivery is at most once: a broker that loses its connection (Redis) drops
what was published meanwhile; consumers recover through resync, as for any missed event.

Link contract: a broker whose link to other processes can break (Redis) tells the handler when
an established link is lost (``on_link_down``: from now on messages are being missed) and when a
link is (re-)established with every wanted topic subscribed again (``on_link_up``). Both are
optional for handlers; the in-memory broker never calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class BrokerHandler(Protocol):
    """Callback the broker invokes for each message on a subscribed topic."""

    def on_message(self, topic: str, data: bytes) -> None: ...


class LinkHandler(BrokerHandler, Protocol):
    """A handler that also wants to know when live delivery was interrupted and restored."""

    def on_link_down(self, reason: str) -> None: ...

    def on_link_up(self) -> None: ...


class Broker(Protocol):
    async def start(self, handler: BrokerHandler) -> None:
        """Connect and begin delivering messages of subscribed topics to ``handler``."""

    async def subscribe(self, topic: str) -> None:
        """Receive messages published on ``topic`` (idempotent)."""

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (idempotent)."""

    async def publish(self, topic: str, data: bytes) -> None:
        """Send ``data`` to every process subscribed to ``topic``, this one included."""

    async def publish_many(self, topic: str, items: Sequence[bytes]) -> None:
        """``publish`` each of ``items`` in order (they may share one round trip); raises if
        any may not have gone out."""

    async def ping(self) -> None:
        """Raise if the broker cannot be reached (used by /readyz)."""

    async def close(self) -> None:
        """Release connections; later calls are errors."""


class BrokerUnavailable(Exception):
    """The broker cannot be reached right now."""
