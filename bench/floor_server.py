"""Bare servers that set the calibration floor of the benchmarks (issue 12 §3).

The machine these benchmarks run on is shared and its speed changes from run to run, so each
benchmark also measures, in the same run and on the same core, the least a Python server can do
for the same load, and reports its own result as a ratio to that.

``ws``: a minimal WebSocket broadcast server (uvloop, raw protocol, no library): it answers the
handshake, replies to any ``phx_join``, and publishes every ``broadcast`` it receives to every
joined socket, framed once per event-loop turn and written once per socket (the DESIGN
"Performance notes" prototype). No authorization, limits, presence, back-pressure or serializer
choice: what is left of a delivery's cost is the write itself.

``http``: a bare uvicorn ASGI endpoint (uvloop + httptools, as onair runs it) that reads the
request body and answers ``201`` with a small JSON body and its content-length.

    python bench/floor_server.py ws --port 18770
    python bench/floor_server.py http --port 18771 [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import struct
import sys
from pathlib import Path
from typing import Any

import orjson

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"


def frame(body: bytes, opcode: int = 0x81) -> bytes:
    n = len(body)
    if n < 126:
        return struct.pack("!BB", opcode, n) + body
    if n < 65536:
        return struct.pack("!BBH", opcode, 126, n) + body
    return struct.pack("!BBQ", opcode, 127, n) + body


def unmask(payload: bytes, mask: bytes) -> bytes:
    if mask == b"\x00\x00\x00\x00":
        return payload
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class Broadcaster:
    def __init__(self) -> None:
        self.members: dict[asyncio.Transport, None] = {}
        self.pending: list[tuple[str, Any]] = []
        self.scheduled = False

    def publish(self, topic: str, payload: Any) -> None:
        self.pending.append((topic, payload))
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        pending, self.pending = self.pending, []
        blob = b"".join(frame(orjson.dumps([None, None, topic, "broadcast", payload])) for topic, payload in pending)
        for transport in list(self.members):
            transport.write(blob)


class Conn(asyncio.Protocol):
    def __init__(self, hub: Broadcaster) -> None:
        self.hub = hub
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        assert self.transport is not None
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            key = next((line.split(":", 1)[1].strip() for line in head if line.lower().startswith("sec-websocket-key:")), "")
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            self.transport.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self.upgraded = True
        while len(self.buf) >= 2:
            opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            pos = 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                (n,) = struct.unpack("!H", self.buf[2:4])
                pos = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                (n,) = struct.unpack("!Q", self.buf[2:10])
                pos = 10
            if len(self.buf) < pos + 4 + n:
                return
            mask = bytes(self.buf[pos:pos + 4])
            payload = unmask(bytes(self.buf[pos + 4:pos + 4 + n]), mask)
            del self.buf[:pos + 4 + n]
            if opcode == 8:
                self.transport.close()
                return
            if opcode == 1:
                self.message(payload)

    def message(self, payload: bytes) -> None:
        join_ref, ref, topic, event, body = orjson.loads(payload)
        if event == "phx_join":
            self.hub.members[self.transport] = None  # type: ignore[index]
            reply = [join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {}}]
            self.transport.write(frame(orjson.dumps(reply)))  # type: ignore[union-attr]
        elif event == "broadcast":
            self.hub.publish(topic, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.members.pop(self.transport, None)  # type: ignore[arg-type]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The bare ASGI endpoint: read the body, answer 201 with a content-length."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'{"id":"00000000-0000-0000-0000-000000000000","seq":1}'
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve_ws(port: int) -> None:
    import uvloop

    async def main() -> None:
        hub = Broadcaster()
        server = await asyncio.get_running_loop().create_server(lambda: Conn(hub), "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())


def serve_http(port: int, workers: int) -> None:
    import uvicorn

    print("ready", flush=True)
    uvicorn.run("floor_server:app", app_dir=str(Path(__file__).resolve().parent), host="127.0.0.1", port=port,
                workers=workers, loop="uvloop", http="httptools", log_level="warning", access_log=False,
                backlog=4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["ws", "http"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    try:
        if args.mode == "ws":
            serve_ws(args.port)
        else:
            serve_http(args.port, args.workers)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
