"""Resource bounds (issue 10 §8, systematic tests): an anonymous attacker against a real server.

The server runs in this process (uvicorn + the realtime protocol class, as `onair serve`), so the
tests can look at its tables: after every attack the hub's topics, members, presence, user and
IP counts, postgres_changes index and the realtime service's per-stream and per-sender maps are
back to where they started, and closed connections are freed by reference counting alone
(``onair serve`` freezes the heap after startup, which makes full collections rare).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import uuid
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from onair.settings import Settings
from tests.security.server import LiveServer, live_server, realtime_tables

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"jwt_secret": "bounds-" + "x" * 48, "data_dir": tmp_path / "data",
                            "reaper_interval": 3600, "realtime_sweep_interval": 0.2}
    return Settings(_env_file=None, **{**base, **overrides})


@pytest.fixture
async def server(tmp_path: Path, free_port: int, request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    overrides = getattr(request, "param", {})
    async with live_server(settings_for(tmp_path, **overrides), free_port) as srv:
        yield srv


async def recv_until(ws: Any, pred: Any, timeout: float = 5.0) -> list[Any]:
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return msg  # type: ignore[no-any-return]


async def join(ws: Any, topic: str, ref: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    await ws.send(json.dumps([ref, ref, topic, "phx_join", payload or {"config": {}}]))
    reply = await recv_until(ws, lambda m: m[3] == "phx_reply" and m[1] == ref)
    return reply[4]  # type: ignore[no-any-return]


async def settle(srv: LiveServer, clients: int = 0, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while len(srv.realtime.hub.clients) > clients:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # connection_lost of the last ones


def baseline(srv: LiveServer) -> dict[str, Any]:
    tables = realtime_tables(srv.realtime)
    tables.pop("budgets")  # idle budgets are dropped by the sweep; checked where it matters
    return tables


EMPTY = {"clients": 0, "topics": 0, "members": 0, "presence": 0, "users": 0, "ips": 0, "subs": 0,
         "change_tables": 0, "broker_refs": 0, "stream_versions": 0, "interested": 0}


# -- closed connections are freed by reference counting ------------------------------------------

@pytest.mark.parametrize("how", ["close", "abort", "apikey_expiry"])
async def test_closed_connection_is_freed_without_a_garbage_collection(server: LiveServer, how: str) -> None:
    apikey = server.token("exp-user", ttl=3) if how == "apikey_expiry" else server.anon_key
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        ws = await websockets.connect(server.ws_url(apikey))
        config = {"config": {"presence": {"key": "k", "enabled": True}, "broadcast": {"self": True, "ack": True},
                             "postgres_changes": [{"event": "*", "schema": "public", "table": "chat_messages"}]}}
        assert (await join(ws, "realtime:room", "1", config))["status"] == "ok"
        await ws.send(json.dumps(["1", "2", "realtime:room", "presence", {"event": "track", "payload": {"a": 1}}]))
        await ws.send(json.dumps(["1", "3", "realtime:room", "broadcast", {"event": "e", "payload": {"a": 1}}]))
        await recv_until(ws, lambda m: m[1] == "3")
        [client] = list(server.realtime.hub.clients)
        shell = client.closer.__self__  # type: ignore[union-attr]
        refs = [weakref.ref(client), weakref.ref(shell)]
        del client, shell
        if how == "close":
            await ws.close()
        elif how == "abort":
            ws.transport.abort()
        else:  # the server's sweep closes the socket once the token it connected with expired
            got = await recv_until(ws, lambda m: m[3] == "system", timeout=5)
            assert got[4]["message"].startswith("Token has expired")
            await ws.wait_closed()
            assert ws.close_code == 1008
        await settle(server)
        for _ in range(20):
            await asyncio.sleep(0.05)  # let timers and callbacks that held the transport run
        assert [r() for r in refs] == [None, None], "a closed connection is kept alive by a reference cycle"
        assert baseline(server) == EMPTY
    finally:
        gc.enable()
        gc.unfreeze()


# -- caps on what an anonymous client can make the server hold -------------------------------------

@pytest.mark.parametrize("server", [{"realtime_max_connections_per_ip": 8}], indirect=True)
async def test_anonymous_sockets_huge_topics_and_many_channels_are_capped(server: LiveServer) -> None:
    before = rss()
    socks = [await websockets.connect(server.ws_url(), max_size=None) for _ in range(8)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(server.ws_url())
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body) == {"error": "Too many connected users"}
        for i, ws in enumerate(socks):
            huge = "realtime:" + f"{i}-" + "x" * 300_000
            for n in range(3):
                reply = await join(ws, huge + str(n), f"h{n}")
                assert reply == {"status": "error", "response": {"reason": "TopicNameTooLong: Topic name must be at most 255 bytes"}}
            for n in range(100):
                assert (await join(ws, f"realtime:{i}-{n:03d}-" + "y" * 230, str(n)))["status"] == "ok"
            reply = await join(ws, f"realtime:{i}-extra", "x")
            assert reply == {"status": "error", "response": {"reason": "ChannelRateLimitReached: Too many channels"}}
            # what the open joins keep (keys, bindings, tokens) is bounded too, however padded
            await ws.send(json.dumps(["1", "leave", f"realtime:{i}-000-" + "y" * 230, "phx_leave", {}]))
            padded = {"config": {"presence": {"key": "k" * 200_000}}}
            assert (await join(ws, f"realtime:{i}-pad1", "p1", padded))["status"] == "ok"
            reply = await join(ws, f"realtime:{i}-pad2", "p2", padded)
            assert reply["status"] == "error" and reply["response"]["reason"].startswith("JoinPayloadTooLarge:")
        tables = baseline(server)
        assert tables["topics"] == 800 and tables["members"] == 800 and tables["ips"] == 1
        assert rss() - before < 64 << 20  # 800 short topics, not 24 × 300 KB ones nor 800 × 200 KB keys
    finally:
        for ws in socks:
            await ws.close()
    await settle(server)
    assert baseline(server) == EMPTY
    ws = await websockets.connect(server.ws_url())  # the IP's sockets were given back
    await ws.close()


@pytest.mark.parametrize("server", [{"realtime_max_connections_per_ip": 2,
                                     "realtime_trusted_proxies": ["127.0.0.0/8"]}], indirect=True)
async def test_per_ip_cap_behind_a_trusted_proxy_counts_the_forwarded_client(server: LiveServer) -> None:
    def via(chain: str) -> Any:
        return websockets.connect(server.ws_url(), additional_headers={"X-Forwarded-For": chain})

    socks = [await via("203.0.113.7"), await via("198.51.100.1, 203.0.113.7")]  # a forged left hop is ignored
    with pytest.raises(InvalidStatus) as refused:
        await via("203.0.113.7")
    assert refused.value.response.status_code == 429
    socks.append(await via("203.0.113.8"))
    assert server.realtime.hub.ips == {"203.0.113.7": 2, "203.0.113.8": 1}
    for ws in socks:
        await ws.close()
    await settle(server)
    assert server.realtime.hub.ips == {}


@pytest.mark.parametrize("server", [{"realtime_max_connections_per_user": 3}], indirect=True)
async def test_anon_sockets_joining_as_one_user_count_toward_that_user(server: LiveServer) -> None:
    token = server.token("victim")
    socks = [await websockets.connect(server.ws_url()) for _ in range(4)]
    replies = [await join(ws, "realtime:room", "1", {"access_token": token, "config": {}}) for ws in socks]
    assert [r["status"] for r in replies] == ["ok", "ok", "ok", "error"]
    assert replies[3]["response"] == {"reason": "ConnectionRateLimitReached: Too many connected users"}
    with pytest.raises(InvalidStatus) as refused:  # and the user's own apikey sockets too
        await websockets.connect(server.ws_url(token))
    assert refused.value.response.status_code == 429
    await socks[0].close()
    await settle(server, clients=3)
    assert (await join(socks[3], "realtime:room", "2", {"access_token": token, "config": {}}))["status"] == "ok"
    for ws in socks[1:]:
        await ws.close()
    await settle(server)
    assert baseline(server) == EMPTY


# -- churn: memory and tables return to baseline -------------------------------------------------

async def churn_round(srv: LiveServer, sockets: int, channels: int) -> list[weakref.ref[Any]]:
    socks = [await websockets.connect(srv.ws_url()) for _ in range(sockets)]
    for i, ws in enumerate(socks):
        for n in range(channels):
            topic = f"realtime:{uuid.uuid4().hex}{'z' * 200}"
            config: dict[str, Any] = {"config": {"presence": {"key": f"k{i}", "enabled": True}}}
            if n % 10 == 0:  # a binding loads the stream from the database: a few are enough
                config["config"]["postgres_changes"] = [{"event": "INSERT", "schema": "public", "table": "chat_messages",
                                                         "filter": f"stream_id=eq.{uuid.uuid4()}"}]
            await ws.send(json.dumps([str(n), str(n), topic, "phx_join", config]))
            await ws.send(json.dumps([str(n), f"t{n}", topic, "presence", {"event": "track", "payload": {"i": i}}]))
        await recv_until(ws, lambda m: m[1] == f"t{channels - 1}")
    refs = [weakref.ref(c) for c in srv.realtime.hub.clients]
    assert len(refs) == sockets
    for ws in socks:
        await ws.close()
    await settle(srv)
    return refs


async def test_connect_close_churn_with_a_frozen_heap_returns_to_baseline(server: LiveServer) -> None:
    gc.collect()
    gc.freeze()  # as `onair serve` does after startup; the collector itself stays on
    try:
        refs = await churn_round(server, 40, 25)  # warm-up: allocator pools, caches, code paths
        start = rss()
        for _ in range(3):
            refs += await churn_round(server, 40, 25)
            assert baseline(server) == EMPTY
        grown = rss() - start
        alive = sum(1 for r in refs if r() is not None)
        assert alive == 0, f"{alive} of {len(refs)} closed connections still alive"
        assert grown < 16 << 20, f"RSS grew {grown >> 20} MB over 3 rounds of 1,000 channels"
    finally:
        gc.unfreeze()


async def test_random_rest_broadcast_topics_leave_nothing_behind(server: LiveServer) -> None:
    buyer = server.token("rest-buyer")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        start = rss()
        for i in range(20):
            messages = [{"topic": f"stream:{uuid.uuid4()}" if n % 2 else f"room-{uuid.uuid4().hex}",
                         "event": "e", "payload": {"n": n}} for n in range(100)]
            key = buyer if i % 2 else server.anon_key
            r = await http.post("/realtime/v1/api/broadcast", json={"messages": messages},
                                headers={"apikey": key, "authorization": f"Bearer {key}"})
            assert r.status_code == 202, r.text
        r = await http.post("/realtime/v1/api/broadcast", headers={"apikey": buyer},
                            json={"messages": [{"topic": "x" * 300, "event": "e", "payload": {}}]})
        assert r.status_code == 422
        # REST shares the sockets' byte budgets: a client cannot flood a topic through it either
        big = {"messages": [{"topic": "room-flooded", "event": "e", "payload": {"b": "x" * 60_000}}]}
        statuses = [(await http.post("/realtime/v1/api/broadcast", json=big, headers={"apikey": buyer})).status_code
                    for _ in range(8)]
        assert statuses[:4] == [202] * 4 and statuses[-1] == 429, statuses
        assert r.status_code == 422
    await asyncio.sleep(4.5)  # the flooded budgets refill; the sweep forgets them
    assert realtime_tables(server.realtime)["budgets"] == 0
    assert baseline(server) == EMPTY
    assert rss() - start < 32 << 20
    facts = getattr(server.realtime.authorizer, "facts", None)
    print(f"policy facts after 1,000 random stream topics: {len(facts) if facts is not None else 'n/a'}")
