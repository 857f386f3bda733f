"""One buyer cannot get other viewers cut off (issue 10 §9), against a real in-process server.

The attack from the issue: within the per-socket limits, one socket sends 250 KB broadcasts at
40/s (or many sockets of one user track 250 KB presence) on a channel a phone-speed viewer
(~1.3 MB/s) has joined. Before the byte budgets the viewer fell behind by > 1 MB within seconds
and was cut off as a slow consumer; now the sender is refused past its budget and the viewer
keeps up.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import websockets

from tests.security.server import LiveServer, live_server
from tests.security.test_resource_bounds import join, settings_for

PHONE_BYTES_PER_SECOND = 1_300_000


async def phone_viewer(srv: LiveServer, topic: str, seconds: float) -> tuple[int, bool]:
    """A raw WebSocket with a small receive window that reads at phone speed: (bytes read,
    whether the server cut it off)."""
    loop = asyncio.get_running_loop()
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    host, port = srv.url.removeprefix("http://").split(":")
    raw.connect((host, int(port)))
    raw.setblocking(False)
    await loop.sock_sendall(raw, (f"GET /realtime/v1/websocket?apikey={srv.anon_key}&vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n"
                                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b" 101 " in (await loop.sock_recv(raw, 4096)).split(b"\r\n")[0]
    frame = json.dumps(["1", "1", topic, "phx_join", {"config": {}}]).encode()
    await loop.sock_sendall(raw, bytes([0x81, 0x80 | 126]) + len(frame).to_bytes(2, "big") + b"\0\0\0\0" + frame
                            if len(frame) > 125 else bytes([0x81, 0x80 | len(frame)]) + b"\0\0\0\0" + frame)
    total, cut = 0, False
    deadline = loop.time() + seconds
    try:
        while loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(raw, 65536), 0.5)
            except TimeoutError:
                continue
            if not chunk:
                cut = True
                break
            total += len(chunk)
            await asyncio.sleep(len(chunk) / PHONE_BYTES_PER_SECOND)
    except ConnectionResetError:
        cut = True
    finally:
        raw.close()
    return total, cut


async def test_a_broadcast_flood_does_not_cut_off_a_phone_speed_viewer(tmp_path: Path, free_port: int) -> None:
    async with live_server(settings_for(tmp_path), free_port) as srv:
        viewer = asyncio.create_task(phone_viewer(srv, "realtime:live", 5.0))
        await asyncio.sleep(0.3)
        sender = await websockets.connect(srv.ws_url(srv.token("mallory")))
        assert (await join(sender, "realtime:live", "1", {"config": {"broadcast": {"ack": True}}}))["status"] == "ok"
        blob = "x" * 250_000
        statuses: list[str] = []
        for i in range(160):  # 250 KB at 40/s for 4 s: 10 MB/s offered
            await sender.send(json.dumps(["1", str(100 + i), "realtime:live", "broadcast", {"event": "blob", "payload": {"b": blob}}]))
            await asyncio.sleep(0.025)
        async with asyncio.timeout(10):
            while len(statuses) < 160:
                msg = json.loads(await sender.recv())
                if msg[3] == "phx_reply" and msg[1] and msg[1] >= "100":
                    statuses.append(msg[4]["status"])
        read, cut = await viewer
        await sender.close()
        assert not cut and srv.realtime.hub.stats.slow_consumers == 0
        assert statuses.count("ok") <= 4, statuses  # the burst and 4 s of refill, nothing more
        assert 250_000 <= read < 1_300_000


async def test_many_sockets_of_one_user_tracking_big_presence_share_one_budget(tmp_path: Path, free_port: int) -> None:
    async with live_server(settings_for(tmp_path), free_port) as srv:
        viewer = asyncio.create_task(phone_viewer(srv, "realtime:live", 4.0))
        await asyncio.sleep(0.3)
        token = srv.token("mallory")
        socks = [await websockets.connect(srv.ws_url(), max_size=None) for _ in range(20)]
        replies: list[dict[str, Any]] = []
        for ws in socks:
            assert (await join(ws, "realtime:live", "1", {"access_token": token, "config": {}}))["status"] == "ok"
            await ws.send(json.dumps(["1", "2", "realtime:live", "presence", {"event": "track", "payload": {"b": "x" * 250_000}}]))
        for ws in socks:
            async with asyncio.timeout(10):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg[3] == "phx_reply" and msg[1] == "2":
                        replies.append(msg[4])
                        break
        read, cut = await viewer
        for ws in socks:
            await ws.close()
        assert not cut and srv.realtime.hub.stats.slow_consumers == 0
        refused = [r for r in replies if r["status"] == "error"]
        assert len(refused) >= 18 and refused[0]["response"] == {"reason": "Client presence rate limit exceeded"}
