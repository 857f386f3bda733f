"""The hub's handle on one connection: where its bytes go and how fast they drain.

Writes go straight to the transport while it keeps up. When the transport reports a full buffer
(``pause_writing``, i.e. uvloop's write buffer passed its high-water mark) later frames are
collected here and written as one buffer on ``resume_writing``: a connection that falls behind gets
fewer, larger writes (DESIGN "Performance notes"). Past ``max_pending_bytes`` the connection is a
slow consumer and the hub cuts it off; nothing here ever waits for a reader.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Protocol

from onair.domain.identity import Principal
from onair.realtime.protocol.connection import ConnectionProtocol

_ids = itertools.count(1)


def _closed_write(data: bytes) -> None:
    return None


def _ignore(client: Client) -> None:
    return None


class Transport(Protocol):
    """The part of ``asyncio.Transport`` the hub uses."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class Client:
    __slots__ = (
        "__weakref__",
        "_pending",
        "_pending_bytes",
        "apikey",
        "closed",
        "closer",
        "direct",
        "id",
        "ip",
        "max_pending_bytes",
        "on_overflow",
        "principal",
        "protocol",
        "rate_count",
        "rate_window",
        "tokens",
        "transport",
        "user_id",
        "users",
        "vsn_index",
        "write",
    )

    def __init__(
        self,
        protocol: ConnectionProtocol,
        transport: Transport,
        principal: Principal | None,
        max_pending_bytes: int,
        on_overflow: Callable[[Client], None],
        closer: Callable[[int, str], None] | None = None,
        ip: str | None = None,
    ) -> None:
        self.id = next(_ids)
        self.protocol = protocol
        self.transport = transport
        self.principal = principal
        self.user_id: str | None = getattr(principal, "user_id", None)
        self.vsn_index = 0 if protocol.serializer.vsn == "1.0.0" else 1
        self.write = transport.write  # bound once: the fan-out loop calls it directly
        self.direct = True  # False while paused, backlogged or closed
        self.closed = False
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.max_pending_bytes = max_pending_bytes
        self.on_overflow = on_overflow
        self.tokens: dict[str, float] = {}  # topic -> access token exp (epoch seconds)
        self.rate_window = 0.0
        self.rate_count = 0
        self.closer = closer
        self.apikey: Any = None  # the connection-level token (TokenInfo), used when a join has none
        self.ip = ip
        # users this socket counts toward (the apikey's, each join's): user -> memberships naming it
        self.users: dict[str, int] = {}

    def close(self, code: int, reason: str) -> None:
        """Close the socket (a WebSocket close frame when the shell gave a closer)."""
        if self.closer is not None:
            self.closer(code, reason)
        elif code >= 4000:
            self.transport.abort()
        else:
            self.transport.close()

    def __hash__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<Client {self.id} user={self.user_id} vsn={self.protocol.serializer.vsn}>"

    def send(self, data: bytes) -> None:
        if self.direct:
            self.write(data)
        else:
            self.enqueue(data)

    def enqueue(self, data: bytes) -> None:
        if self.closed:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > self.max_pending_bytes:
            self.closed = True
            self.on_overflow(self)

    def flush_protocol(self) -> None:
        """Write whatever the sans-I/O protocol produced (replies, pushes)."""
        out = self.protocol.data_to_send()
        if out:
            self.send(out[0] if len(out) == 1 else b"".join(out))

    def pause_writing(self) -> None:
        self.direct = False

    def resume_writing(self) -> None:
        if self.closed:
            return
        self.direct = True  # before the write: a write that fills the buffer pauses us again
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self.write(data)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def mark_closed(self) -> None:
        self.closed = True
        self.direct = False
        self._pending.clear()
        self._pending_bytes = 0

    def release(self) -> None:
        """Drop the references back to the shell (closer, the transport's bound write): with
        them gone nothing points from here to the socket's protocol object, so a closed
        connection is freed by reference counting, without waiting for a full GC."""
        self.closer = None
        self.write = _closed_write
        self.on_overflow = _ignore
