"""Reactions through the real server (issue 14): ``onair serve`` on SQLite and PostgreSQL, raw
WebSocket clients and REST. Taps of several viewers (socket and REST, any casing) reach every
viewer as ``reactions`` aggregates that add up exactly; attackers (anonymous, muted, banned, bad
kinds, forged aggregates, floods) change nothing; two nodes over Redis count every tap once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import websockets

from tests.compat.onair_server import OnairServer, run_server
from tests.conftest import (
    POSTGRES_URL,
    REDIS_URL,
    _create_schema,
    _port_open,
    need,
    postgres_available,
)


@asynccontextmanager
async def database_env(kind: str) -> AsyncIterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
        return
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    schema = f"rx_{secrets.token_hex(4)}"
    await _create_schema(schema)
    try:
        yield {"ONAIR_DATABASE_URL": POSTGRES_URL, "ONAIR_DATABASE_SCHEMA": schema}
    finally:
        await _create_schema(schema, drop=True)


@contextmanager
def servers(tmp: Path, count: int, env: dict[str, str]) -> Iterator[list[OnairServer]]:
    env = {"ONAIR_JWT_SECRET": secrets.token_hex(32), **env}
    with ExitStack() as stack:
        yield [stack.enter_context(run_server(tmp / f"n{i}", **env)) for i in range(count)]


class Viewer:
    """A raw Supabase-protocol client on one stream channel (vsn 2.0.0 arrays)."""

    def __init__(self, ws: Any, topic: str) -> None:
        self.ws, self.topic, self.ref = ws, topic, 10
        self.counts: dict[str, int] = {}
        self.aggregates = 0
        self.other: list[str] = []  # other broadcast events seen
        self.replies: dict[str, Any] = {}

    @classmethod
    @asynccontextmanager
    async def open(cls, server: OnairServer, sid: str, token: str | None) -> AsyncIterator[Viewer]:
        topic = f"realtime:stream:{sid}"
        async with websockets.connect(f"{server.ws_url}/websocket?apikey={server.anon_key}&vsn=2.0.0") as ws:
            viewer = cls(ws, topic)
            config: dict[str, Any] = {"config": {"broadcast": {"ack": True, "self": True}}}
            if token is not None:
                config["access_token"] = token
            await ws.send(json.dumps(["1", "1", topic, "phx_join", config]))
            reply = await viewer.next(lambda m: m[3] == "phx_reply" and m[1] == "1")
            assert reply[4]["status"] == "ok", reply
            reader = asyncio.create_task(viewer._read())
            try:
                yield viewer
            finally:
                reader.cancel()

    async def next(self, predicate: Any, timeout: float = 10.0) -> Any:
        async def loop() -> Any:
            while True:
                msg = json.loads(await self.ws.recv())
                if predicate(msg):
                    return msg
        return await asyncio.wait_for(loop(), timeout)

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg[3] == "phx_reply":
                self.replies[msg[1]] = msg[4]
            elif msg[3] == "broadcast" and msg[4]["event"] == "reactions":
                self.aggregates += 1
                for kind, n in msg[4]["payload"]["counts"].items():
                    self.counts[kind] = self.counts.get(kind, 0) + n
            elif msg[3] == "broadcast":
                self.other.append(msg[4]["event"])

    async def send(self, event: str, payload: Any) -> dict[str, Any]:
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send(json.dumps(["1", ref, self.topic, "broadcast", {"type": "broadcast", "event": event,
                                                                           "payload": payload}]))
        for _ in range(200):
            if ref in self.replies:
                return self.replies.pop(ref)  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no reply to {event}")

    async def settle(self, want: dict[str, int], timeout: float = 5.0) -> None:
        """Wait until the counts reach ``want``, then one more second for anything extra."""
        for _ in range(int(timeout / 0.05)):
            if self.counts == want:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        assert self.counts == want


def rest_react(server: OnairServer, sid: str, token: str | None, kind: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    import httpx
    return httpx.post(f"{server.url}/api/v1/streams/{sid}/reactions", json={"kind": kind}, headers=headers, timeout=10)


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_taps_reach_every_viewer_as_aggregates_that_add_up(tmp_path: Path, db: str) -> None:
    async with database_env(db) as env:
        with servers(tmp_path, 1, env) as (server,):
            seller = server.token("seller", "seller")
            sid = server.create_live_stream(seller)
            async with Viewer.open(server, sid, server.token("alice")) as alice, \
                    Viewer.open(server, sid, server.token("bob")) as bob, \
                    Viewer.open(server, sid, seller) as studio, \
                    Viewer.open(server, sid, None) as anon:
                # any spelling that folds onto "react" (event_names.json) is a tap, never a fan-out
                for event, kind in [("react", "heart"), ("REACT", "Heart"), ("React", "HEART"), ("react", "fire"),
                                    ("\uff32\uff25\uff21\uff23\uff34", "wow"), ("re\u0301act", "wow")]:
                    assert (await alice.send(event, {"kind": kind}))["status"] == "ok"
                for _ in range(2):
                    assert rest_react(server, sid, server.token("bob"), "clap").status_code == 202
                want = {"heart": 3, "fire": 1, "clap": 2, "wow": 2}
                for viewer in (alice, bob, studio, anon):
                    await viewer.settle(want)
                    assert viewer.other == []  # taps are never fanned out one by one
                assert 1 <= bob.aggregates <= 6  # a handful of windows, not one message per tap


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_attackers_change_nothing(tmp_path: Path, db: str) -> None:
    async with database_env(db) as env:
        with servers(tmp_path, 1, {**env, "ONAIR_REACTIONS_PER_SECOND": "2", "ONAIR_REACTIONS_BURST": "5"}) as (server,):
            seller = server.token("seller", "seller")
            sid = server.create_live_stream(seller)
            for user, kind in [("mutey", "mute"), ("banny", "ban")]:
                body = {"user_id": user, "kind": kind, **({"duration_seconds": 600} if kind == "mute" else {})}
                r = server.api("POST", f"/api/v1/streams/{sid}/chat/sanctions", seller, json=body)
                assert r.status_code == 201, r.text
            async with Viewer.open(server, sid, server.token("watcher")) as watcher, \
                    Viewer.open(server, sid, None) as anon, \
                    Viewer.open(server, sid, server.token("mutey")) as muted, \
                    Viewer.open(server, sid, server.token("eve")) as eve:
                # anonymous and muted viewers may read but not react, on the socket and on REST
                assert (await anon.send("react", {"kind": "heart"}))["status"] == "error"
                assert (await muted.send("REACT", {"kind": "heart"}))["status"] == "error"
                assert rest_react(server, sid, None, "heart").status_code == 401
                assert rest_react(server, sid, server.token("mutey"), "heart").json()["type"] == "reactions-not-allowed"
                assert rest_react(server, sid, server.token("banny"), "heart").status_code == 403
                # bad kinds are refused, never guessed
                for kind in ["poop", "hеart", "", "heart " * 5, 3, None, {"a": 1}]:
                    reply = await eve.send("react", {"kind": kind})
                    assert reply == {"status": "error", "response": {"reason": "unknown reaction kind"}}, kind
                assert (await eve.send("react", [1, 2]))["status"] == "error"
                r = rest_react(server, sid, server.token("eve"), "poop")
                assert r.status_code == 422 and r.json()["type"] == "unknown-reaction-kind"
                assert rest_react(server, sid, server.token("eve"), 7).status_code == 422
                assert rest_react(server, sid + "x", server.token("eve"), "heart").status_code == 404
                # forged aggregates (any casing) are server-only
                for event in ["reactions", "REACTIONS", "Reactions"]:
                    assert (await eve.send(event, {"counts": {"heart": 1000}}))["status"] == "error"
                # a flood: excess taps are dropped silently (ok replies), counted once each
                start = asyncio.get_running_loop().time()
                for _ in range(60):
                    assert (await eve.send("react", {"kind": "wow"}))["status"] == "ok"
                elapsed = asyncio.get_running_loop().time() - start
                await asyncio.sleep(1.0)
                got = watcher.counts.get("wow", 0)
                assert 5 <= got <= 5 + 2 * elapsed + 1, (got, elapsed)
                assert set(watcher.counts) == {"wow"} and watcher.other == []
                metrics = server.api("GET", "/metrics", seller).text
                assert 'onair_reactions_taps_total{outcome="rate_limited"}' in metrics
            assert server.api("POST", f"/api/v1/streams/{sid}/end", seller).status_code == 200
            r = rest_react(server, sid, server.token("eve"), "heart")
            assert r.status_code == 409 and r.json()["type"] == "stream-ended"


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_nodes_count_every_tap_once(tmp_path: Path) -> None:
    redis = urlparse(REDIS_URL)
    need(_port_open(redis.hostname or "127.0.0.1", redis.port or 6379), f"Redis not reachable at {REDIS_URL}")
    async with database_env("postgresql") as env:
        prefix = env["ONAIR_DATABASE_SCHEMA"]
        with servers(tmp_path, 2, {**env, "ONAIR_BROKER_URL": REDIS_URL, "ONAIR_BROKER_KEY_PREFIX": f"{prefix}:",
                                   "ONAIR_REACTIONS_BURST": "100"}) as (a, b):
            seller = a.token("seller", "seller")
            sid = a.create_live_stream(seller)
            async with Viewer.open(a, sid, a.token("alice")) as alice, Viewer.open(b, sid, b.token("bob")) as bob:
                await asyncio.sleep(0.5)  # both nodes' broker subscriptions settle
                for i in range(20):
                    assert (await alice.send("react", {"kind": "heart"}))["status"] == "ok"
                    assert (await bob.send("react", {"kind": "fire" if i % 2 else "clap"}))["status"] == "ok"
                assert rest_react(a, sid, a.token("carol"), "laugh").status_code == 202
                assert rest_react(b, sid, b.token("dave"), "laugh").status_code == 202
                want = {"heart": 20, "fire": 10, "clap": 10, "laugh": 2}
                await alice.settle(want)
                await bob.settle(want)
