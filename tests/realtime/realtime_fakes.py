"""Fakes that drive the hub without sockets (STYLE §12)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import orjson

from onair.realtime.client import Client
from onair.realtime.dispatcher import Dispatcher, TokenInfo, TokenRejected
from onair.realtime.hub import Hub
from onair.realtime.protocol.connection import ConnectionProtocol
from onair.realtime.protocol.serializer import SERIALIZERS


class FakeTransport:
    """Records written bytes. ``stuck`` transports stop draining: past ``high_water`` buffered
    bytes they call ``pause_writing`` like asyncio transports do. ``fail_writes`` makes the next
    that many writes raise (``-1``: every write), as a transport whose socket broke does
    (uvloop raises RuntimeError on a closed handle, asyncio OSErrors)."""

    def __init__(self, high_water: int = 65536) -> None:
        self.data = bytearray()
        self.writes = 0
        self.closed = False
        self.aborted = False
        self.close_code: int | None = None
        self.stuck = False
        self.buffered = 0
        self.high_water = high_water
        self.paused = False
        self.client: Client | None = None
        self.observer: Callable[[bytes], None] | None = None  # sees every write as it happens
        self.fail_writes = 0
        self.failed = 0  # writes that raised

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        if self.fail_writes:
            self.fail_writes -= self.fail_writes > 0
            self.failed += 1
            raise RuntimeError("unable to perform operation on <TCPTransport>; the handler is closed")
        self.writes += 1
        if self.stuck:
            self.buffered += len(data)
            if not self.paused and self.buffered > self.high_water and self.client is not None:
                self.paused = True
                self.client.pause_writing()
            return
        if self.observer is not None:
            self.observer(data)
            return
        self.data += data

    def drain(self) -> None:
        self.stuck = False
        self.buffered = 0
        if self.paused and self.client is not None:
            self.paused = False
            self.client.resume_writing()

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def frames(self) -> list[tuple[bool, bytes]]:
        return parse_frames(bytes(self.data))

    def messages(self) -> list[Any]:
        return [orjson.loads(body) for binary, body in self.frames() if not binary]

    def take(self) -> list[Any]:
        msgs = self.messages()
        self.data.clear()
        return msgs


def parse_frames(buf: bytes) -> list[tuple[bool, bytes]]:
        out, pos = [], 0
        while pos < len(buf):
            head, n = buf[pos], buf[pos + 1]
            pos += 2
            if n == 126:
                (n,) = struct.unpack("!H", buf[pos:pos + 2])
                pos += 2
            elif n == 127:
                (n,) = struct.unpack("!Q", buf[pos:pos + 8])
                pos += 8
            out.append((head == 0x82, buf[pos:pos + n]))
            pos += n
        return out


class Principal:
    def __init__(self, user_id: str | None, role: str = "buyer") -> None:
        self.user_id = user_id
        self.role = role

    def __repr__(self) -> str:
        return f"Principal({self.user_id!r}, {self.role!r})"


def token_verifier(now: Callable[[], float] = lambda: 0.0) -> Callable[[str], TokenInfo]:
    """Tokens look like ``user:role:exp`` (exp optional); ``bad`` is malformed."""

    def verify(token: str) -> TokenInfo:
        parts = token.split(":")
        if len(parts) < 2:
            raise TokenRejected("The token provided is not a valid JWT", "MalformedJWT")
        exp = float(parts[2]) if len(parts) > 2 else None
        return TokenInfo(Principal(parts[0] or None, parts[1]), exp)

    return verify


def run_sync(coro: Any) -> Any:
    """Run a coroutine that never really suspends (fake authorizers), without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("coroutine suspended")


class Harness:
    """A hub + dispatcher with manual flushing and helpers to connect fake clients."""

    def __init__(self, hub: Hub | None = None, **dispatcher_kwargs: Any) -> None:
        self.flushes: list[Callable[[], None]] = []
        self.hub = hub or Hub(self.flushes.append)
        self.verify = token_verifier()
        self.dispatcher = Dispatcher(self.hub, self.verify, **dispatcher_kwargs)
        self.now = 0.0

    def connect(self, token: str = "u1:buyer", vsn: str = "2.0.0", max_pending: int = 1 << 20) -> tuple[Client, FakeTransport]:
        transport = FakeTransport()
        protocol = ConnectionProtocol(SERIALIZERS[vsn], self.now)
        client = Client(protocol, transport, self.verify(token).principal, max_pending, self.hub.overflow)
        client.apikey = self.verify(token)  # type: ignore[attr-defined]
        transport.client = client
        self.hub.connect(client)
        return client, transport

    def push(self, client: Client, msg: list[Any] | dict[str, Any] | bytes, binary: bool = False) -> None:
        from onair.realtime.protocol.connection import JoinRequested, TokenRefreshed

        data = msg if isinstance(msg, bytes) else orjson.dumps(msg)
        if client.closed or not self.dispatcher.admit(client, self.now):  # as service.receive
            return
        req = client.protocol.receive(data, binary, self.now)
        if isinstance(req, JoinRequested):
            run_sync(self.dispatcher.join(client, req, client.apikey, self.now))  # type: ignore[attr-defined]
        elif isinstance(req, TokenRefreshed):
            run_sync(self.dispatcher.refresh(client, req, self.now))
        elif req is not None:
            self.dispatcher.handle(client, req, self.now)
        self.hub.send_protocol_output(client)

    def join(self, client: Client, topic: str, ref: str = "1", **config: Any) -> None:
        vsn = client.protocol.serializer.vsn
        payload = {"config": config}
        if vsn == "2.0.0":
            self.push(client, [ref, ref, topic, "phx_join", payload])
        else:
            self.push(client, {"topic": topic, "event": "phx_join", "payload": payload, "ref": ref, "join_ref": ref})

    def send(self, client: Client, topic: str, event: str, payload: Any, ref: str = "9") -> None:
        join_ref = client.protocol.join_ref(topic)
        if client.protocol.serializer.vsn == "2.0.0":
            self.push(client, [join_ref, ref, topic, event, payload])
        else:
            self.push(client, {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref})

    def flush(self) -> None:
        while self.flushes:
            self.flushes.pop(0)()
