"""Protocol robustness against a real ``onair serve``: bad input gets an error or a close for the
offending connection only; other connections are unaffected and the server stays up."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.compat.onair_server import OnairServer, run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    env = {"ONAIR_REALTIME_MAX_MESSAGES_PER_SECOND": "200", "ONAIR_REALTIME_MAX_PAYLOAD_BYTES": "65536",
           "ONAIR_REALTIME_MAX_PENDING_BYTES": "262144", "ONAIR_REALTIME_WRITE_BUFFER_BYTES": "65536",
           # these tests push MB/s through one sender on purpose: byte budgets out of the way
           "ONAIR_REALTIME_USER_BYTES_PER_SECOND": "100000000", "ONAIR_REALTIME_TOPIC_BYTES_PER_SECOND": "100000000"}
    with run_server(tmp_path_factory.mktemp("onair-robust"), **env) as srv:
        yield srv


def ws_url(server: OnairServer, vsn: str = "2.0.0") -> str:
    return f"{server.ws_url}/websocket?apikey={server.anon_key}&vsn={vsn}"


async def recv_json(ws: Any, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def join(ws: Any, topic: str, ref: str = "1", **config: Any) -> Any:
    await ws.send(json.dumps([ref, ref, f"realtime:{topic}", "phx_join", {"config": config}]))
    return await recv_json(ws)


async def heartbeat_ok(ws: Any) -> bool:
    await ws.send(json.dumps([None, "hb", "phoenix", "heartbeat", {}]))
    while True:
        msg = await recv_json(ws)
        if msg[1] == "hb":
            return bool(msg[4]["status"] == "ok")


async def test_malformed_frames_are_ignored_or_answered(server: OnairServer) -> None:
    async with websockets.connect(ws_url(server)) as ws:
        for junk in ["not json", "{", "[1,2]", '{"topic":"x"}', "[null,null,5,\"e\",{}]", "null", "[" * 1000]:
            await ws.send(junk)
        await ws.send(b"\x03\xff\xff\xff\xff\xff\x01garbage")
        await ws.send(b"\x00\x01\x02")
        await ws.send(json.dumps(["1", "2", "realtime:nowhere", "broadcast", {"event": "e"}]))
        assert (await recv_json(ws))[4] == {"status": "error", "response": {"reason": "unmatched topic"}}
        assert (await join(ws, "r"))[4]["status"] == "ok"
        await ws.send(json.dumps(["1", "3", "realtime:r", "what", {}]))
        assert (await recv_json(ws))[4]["status"] == "error"
        await ws.send(json.dumps(["1", "4", "realtime:r", "presence", {"event": "track", "payload": "str"}]))
        assert (await recv_json(ws))[4]["response"] == {"reason": "Presence track payload must be a map"}
        assert await heartbeat_ok(ws)


async def test_bad_upgrades_are_refused(server: OnairServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{server.ws_url}/websocket?apikey=nope&vsn=2.0.0"):
            pass
    assert info.value.response.status_code == 401 and b"not a valid JWT" in info.value.response.body
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{server.ws_url}/websocket?vsn=2.0.0"):
            pass
    assert b"API key is missing" in info.value.response.body
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{server.ws_url}/websocket?apikey={server.anon_key}&vsn=9.9.9"):
            pass
    assert info.value.response.status_code == 400


async def test_huge_frame_closes_only_that_connection(server: OnairServer) -> None:
    async with websockets.connect(ws_url(server)) as good, websockets.connect(ws_url(server), max_size=None) as bad:
        await join(good, "big")
        await join(bad, "big")
        await bad.send(json.dumps(["1", "2", "realtime:big", "broadcast", {"event": "e", "payload": {"x": "y" * 300_000}}]))
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(bad.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        assert await heartbeat_ok(good)


async def test_a_thousand_joins_hit_the_channel_limit(server: OnairServer) -> None:
    async with websockets.connect(ws_url(server)) as ws:
        errors = ok = 0
        for i in range(1000):
            await ws.send(json.dumps([str(i), str(i), f"realtime:t{i}", "phx_join", {"config": {}}]))
            if i % 150 == 149:
                await asyncio.sleep(1.0)  # stay under the per-second frame limit
        while ok + errors < 1000:
            msg = await recv_json(ws, 15)
            if msg[3] == "phx_reply":
                if msg[4]["status"] == "ok":
                    ok += 1
                else:
                    assert msg[4]["response"] == {"reason": "ChannelRateLimitReached: Too many channels"}
                    errors += 1
        assert ok == 100 and errors == 900
        assert await heartbeat_ok(ws)


async def test_flooding_client_is_cut_off_and_others_are_not(server: OnairServer) -> None:
    async with websockets.connect(ws_url(server)) as flood, websockets.connect(ws_url(server)) as calm:
        await join(flood, "flood")
        await join(calm, "flood")
        with pytest.raises(websockets.ConnectionClosed) as info:
            for i in range(2000):
                await flood.send(json.dumps(["1", None, "realtime:flood", "broadcast", {"event": "e", "payload": {"i": i}}]))
            while True:
                await asyncio.wait_for(flood.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert await heartbeat_ok(calm)


def _kernel_send_buffer_max() -> int:
    """The most a server socket's kernel send queue can absorb here (tcp_wmem's maximum)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


def _closed_within(raw: socket.socket, deadline_s: float) -> bool:
    """Read ``raw`` until the server's end arrives (EOF or reset) or the deadline passes. An
    aborted socket's kernel still delivers what it had queued, through our small window, before
    its FIN; reading once without waiting would race that trickle."""
    raw.settimeout(0.5)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if not raw.recv(1 << 20):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


async def test_slow_consumer_is_disconnected_and_others_get_everything(server: OnairServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    raw.connect((host, int(port)))
    raw.sendall((f"GET /realtime/v1/websocket?apikey={server.anon_key}&vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b" 101 " in raw.recv(4096).split(b"\r\n")[0]
    join_frame = json.dumps(["1", "1", "realtime:slow", "phx_join", {"config": {}}]).encode()
    raw.sendall(bytes([0x81, 0x80 | len(join_frame)]) + b"\0\0\0\0" + join_frame)
    pad = "x" * 30_000
    # more than the server's kernel send queue, its write buffer and the pending bound together,
    # whatever this machine's TCP buffers are: the slow socket must overflow
    messages = max(200, (2 * _kernel_send_buffer_max() + (2 << 20)) // len(pad))
    received = 0
    async with websockets.connect(ws_url(server)) as fast, websockets.connect(ws_url(server)) as sender:
        await join(fast, "slow")
        await join(sender, "slow")

        async def read_all() -> int:
            """Drain the fast connection's socket as fast as possible, counting frames."""
            n = 0
            while n < messages:
                msg = await asyncio.wait_for(fast.recv(decode=False), 10)
                if b'"broadcast",' in msg[:80]:
                    n += 1
            return n

        reader = asyncio.create_task(read_all())
        for i in range(messages):  # at a pace the fast reader keeps up with, to a socket that never reads
            await sender.send(json.dumps(["1", None, "realtime:slow", "broadcast", {"event": "e", "payload": {"i": i, "pad": pad}}]))
            await asyncio.sleep(0.01)
        received = await reader
    closed = await asyncio.to_thread(_closed_within, raw, 30.0)
    raw.close()
    assert received == messages
    assert closed, "the slow consumer should have been cut off"
    scrape = httpx.get(f"{server.url}/metrics", timeout=10).text
    slow = [line for line in scrape.splitlines() if line.startswith("onair_realtime_slow_consumers_total ")]
    assert slow and float(slow[0].split()[1]) >= 1, "cut off as a slow consumer, not by a heartbeat timeout"
