"""The realtime socket after the handshake (realtime/websocket.py) over real TCP sockets to an
in-process uvicorn with onair's protocol classes: control frames, fragments, the limits and close
codes, a join sent with the upgrade request, the stop of the server, and that the handshake's
objects are gone once the socket has taken over."""

from __future__ import annotations

import asyncio
import gc
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol as WebSocketsProtocol

from onair.domain.clock import FakeClock
from onair.realtime.service import STATE_KEY
from onair.realtime.websocket import RealtimeSocket
from onair.realtime.wiring import server_options
from onair.settings import Settings
from tests.apps import running_context
from tests.realtime.test_wsreader import frame

MAX_PAYLOAD = 1024  # ws_max_size is this + 65,536
WAIT = 10.0


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[uvicorn.Server, int, str]]:
    settings = Settings(_env_file=None, data_dir=tmp_path, jwt_secret="socket-secret-" + "x" * 40,
                        reaper_interval=3600, realtime_max_payload_bytes=MAX_PAYLOAD)
    async with running_context(settings, FakeClock()) as ctx:
        from onair.app import create_app

        app = create_app(ctx.settings, ctx=ctx, run_reaper=False)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
                                **server_options(ctx.settings))
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(WAIT):
                while not server.started:
                    await asyncio.sleep(0.01)
            server.lifespan.state[STATE_KEY] = ctx.realtime
            yield server, server.servers[0].sockets[0].getsockname()[1], ctx.anon_key
        finally:
            for raw in Raw.opened:
                raw.writer.close()
            Raw.opened.clear()
            server.should_exit = True
            await task


def upgrade_request(key: str) -> bytes:
    return (f"GET /realtime/v1/websocket?apikey={key}&vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def text(msg: Any) -> bytes:
    return frame(1, json.dumps(msg).encode())


JOIN = ["1", "1", "realtime:room", "phx_join", {"config": {}}]


class Raw:
    """A client on a plain TCP socket: exact bytes out, server frames parsed in."""

    opened: ClassVar[list[Raw]] = []  # closed when the server stops

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        Raw.opened.append(self)

    @classmethod
    async def open(cls, port: int, key: str, then: bytes = b"") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request(key) + then)  # one write: one TCP segment on loopback
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self) -> tuple[int, bytes]:
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        assert not b1 & 0x80, "server frames are unmasked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def reply(self, ref: str) -> Any:
        while True:
            opcode, body = await self.frame()
            assert opcode == 1, (opcode, body)
            msg = json.loads(body)
            if msg[3] == "phx_reply" and msg[1] == ref:
                return msg[4]

    async def close_frame(self) -> tuple[int, str]:
        """Skip data frames up to the server's close frame; then the server ends the TCP stream."""
        while True:
            opcode, body = await self.frame()
            if opcode == 8:
                assert await asyncio.wait_for(self.reader.read(), WAIT) == b""
                return struct.unpack("!H", body[:2])[0], body[2:].decode()


async def test_ping_gets_a_pong_with_its_payload(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, port, key):
        raw = await Raw.open(port, key)
        raw.send(frame(9, b"are you there"))
        assert await raw.frame() == (0xA, b"are you there")
        raw.send(frame(10, b"unsolicited") + text(JOIN))  # a pong is ignored
        assert (await raw.reply("1"))["status"] == "ok"


async def test_a_fragmented_join_with_a_ping_inside(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, port, key):
        raw = await Raw.open(port, key)
        body = json.dumps(JOIN).encode()
        raw.send(frame(1, body[:5], fin=False) + frame(9, b"p") + frame(0, body[5:20], fin=False))
        assert await raw.frame() == (0xA, b"p")
        raw.send(frame(0, body[20:]))
        assert (await raw.reply("1"))["status"] == "ok"


async def test_a_join_in_the_same_segment_as_the_upgrade_request(tmp_path: Path) -> None:
    """uvicorn's HTTP protocol would drop bytes read together with an upgrade request."""
    async with serving(tmp_path) as (_, port, key):
        heartbeat = text([None, "2", "phoenix", "heartbeat", {}])
        raw = await Raw.open(port, key, then=text(JOIN) + heartbeat[:3])
        assert (await raw.reply("1"))["status"] == "ok"
        raw.send(heartbeat[3:])
        assert (await raw.reply("2"))["status"] == "ok"


async def test_an_oversize_message_is_closed_with_1009(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, port, key):
        limit = MAX_PAYLOAD + 65_536
        raw = await Raw.open(port, key)
        raw.send(frame(2, b"x" * limit))  # at the limit: taken (and ignored as malformed)
        raw.send(text([None, "2", "phoenix", "heartbeat", {}]))
        assert (await raw.reply("2"))["status"] == "ok"
        raw.send(frame(2, b"x" * 40_000, fin=False) + frame(0, b"x" * (limit - 40_000 + 1))[:20])
        assert await raw.close_frame() == (1009, f"frame with {limit - 40_000 + 1} bytes after reading "
                                                 f"40000 bytes exceeds limit of {limit} bytes")


async def test_an_unmasked_frame_is_closed_with_1002(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, port, key):
        raw = await Raw.open(port, key)
        raw.send(frame(1, json.dumps(JOIN).encode(), masked=False))
        assert await raw.close_frame() == (1002, "incorrect masking")


async def test_reserved_bits_are_closed_with_1002(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, port, key):
        raw = await Raw.open(port, key)
        raw.send(frame(1, json.dumps(JOIN).encode(), rsv=4))  # permessage-deflate's bit, never agreed
        assert await raw.close_frame() == (1002, "reserved bits must be 0")


async def test_invalid_utf8_text_is_closed_with_1007(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, port, key):
        raw = await Raw.open(port, key)
        raw.send(frame(1, b'["1","1","realtime:\xff","phx_join",{}]'))
        assert await raw.close_frame() == (1007, "invalid start byte at position 19")


async def test_the_close_handshake_echoes_the_code(tmp_path: Path) -> None:
    async with serving(tmp_path) as (server, port, key):
        raw = await Raw.open(port, key)
        raw.send(text(JOIN))
        assert (await raw.reply("1"))["status"] == "ok"
        raw.send(frame(8, struct.pack("!H", 4001) + b"bye"))
        assert await raw.close_frame() == (4001, "bye")
        async with asyncio.timeout(WAIT):
            while server.server_state.connections:
                await asyncio.sleep(0.01)


async def test_stopping_the_server_closes_realtime_sockets_with_1012(tmp_path: Path) -> None:
    """uvicorn's stop calls ``shutdown()`` on what ``server_state.connections`` holds: the
    realtime socket took the handshake protocol's place there, and the handshake's objects
    (uvicorn's protocol, websockets' ServerProtocol) are freed by reference counting."""
    async with serving(tmp_path) as (server, port, key):
        gc.collect()
        gc.disable()
        try:
            raws = [await Raw.open(port, key, then=text(JOIN)) for _ in range(3)]
            for raw in raws:
                assert (await raw.reply("1"))["status"] == "ok"
            kinds = {type(c) for c in server.server_state.connections}
            assert kinds == {RealtimeSocket}, kinds
            left = [type(o).__name__ for o in gc.get_objects()
                    if isinstance(o, (WebSocketsSansIOProtocol, WebSocketsProtocol, HttpToolsProtocol))]
            assert left == []
        finally:
            gc.enable()
        server.should_exit = True
        for raw in raws:
            assert await raw.close_frame() == (1012, "")
