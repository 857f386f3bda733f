"""Two onair processes on one PostgreSQL + Redis: a realtime client on node A receives presence,
broadcasts and chat inserts made on node B, and node B's presence members vanish when it is killed."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from contextlib import ExitStack
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

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def recv_until(ws: Any, predicate: Any, timeout: float = 10.0) -> Any:
    async def loop() -> Any:
        while True:
            msg = json.loads(await ws.recv())
            if predicate(msg):
                return msg
    return await asyncio.wait_for(loop(), timeout)


async def test_presence_broadcast_and_chat_cross_nodes(tmp_path: Any) -> None:
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    redis = urlparse(REDIS_URL)
    need(_port_open(redis.hostname or "127.0.0.1", redis.port or 6379), f"Redis not reachable at {REDIS_URL}")
    schema = f"rt_{secrets.token_hex(4)}"
    await _create_schema(schema)
    env = {"ONAIR_DATABASE_URL": POSTGRES_URL, "ONAIR_DATABASE_SCHEMA": schema, "ONAIR_BROKER_URL": REDIS_URL,
           "ONAIR_BROKER_KEY_PREFIX": f"{schema}:", "ONAIR_JWT_SECRET": secrets.token_hex(32),
           "ONAIR_PRESENCE_TTL": "3", "ONAIR_PRESENCE_HEARTBEAT_INTERVAL": "0.5"}
    try:
        with ExitStack() as stack:
            a: OnairServer = stack.enter_context(run_server(tmp_path / "a", **env))
            b: OnairServer = stack.enter_context(run_server(tmp_path / "b", **env))
            seller = a.token("seller", "seller")
            sid = a.create_live_stream(seller)
            topic = f"realtime:stream:{sid}"
            join = lambda key, token: json.dumps(["1", "1", topic, "phx_join", {  # noqa: E731
                "access_token": token, "config": {"presence": {"key": key, "enabled": True}, "postgres_changes": [
                    {"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{sid}"}]}}])
            async with websockets.connect(f"{b.ws_url}/websocket?apikey={b.anon_key}&vsn=2.0.0") as ws_b:
                await ws_b.send(join("bob", b.token("bob")))
                assert (await recv_until(ws_b, lambda m: m[3] == "phx_reply"))[4]["status"] == "ok"
                await ws_b.send(json.dumps(["1", "2", topic, "presence", {"event": "track", "payload": {"name": "bob"}}]))
                await recv_until(ws_b, lambda m: m[1] == "2")
                await asyncio.sleep(0.5)
                async with websockets.connect(f"{a.ws_url}/websocket?apikey={a.anon_key}&vsn=2.0.0") as ws_a:
                    await ws_a.send(join("alice", a.token("alice")))
                    assert (await recv_until(ws_a, lambda m: m[3] == "phx_reply"))[4]["status"] == "ok"
                    state = await recv_until(ws_a, lambda m: m[3] == "presence_state")
                    assert state[4]["bob"]["metas"][0]["name"] == "bob"  # node B's member, from the shared store
                    await asyncio.sleep(0.5)  # let node A's broker subscriptions settle
                    await ws_b.send(json.dumps(["1", "3", topic, "broadcast", {"event": "reaction", "payload": {"e": "+1"}}]))
                    got = await recv_until(ws_a, lambda m: m[3] == "broadcast")
                    assert got[4] == {"type": "broadcast", "event": "reaction", "payload": {"e": "+1"}}
                    r = b.api("POST", f"/api/v1/streams/{sid}/chat", b.token("bob"), json={"body": "hi from B", "client_msg_id": "m1"})
                    assert r.status_code == 201, r.text
                    change = await recv_until(ws_a, lambda m: m[3] == "postgres_changes")
                    assert change[4]["data"]["record"]["body"] == "hi from B"
                    b.process.send_signal(signal.SIGKILL)
                    leave = await recv_until(ws_a, lambda m: m[3] == "presence_diff" and "bob" in m[4]["leaves"], timeout=15)
                    assert leave[4]["leaves"]["bob"]["metas"][0]["name"] == "bob"
    finally:
        await _create_schema(schema, drop=True)


async def test_demotion_on_one_node_applies_to_an_open_socket_on_another(tmp_path: Any) -> None:
    """Issue 10 §5: the co-host change made through node A reaches node B's policy through the
    broker; B's open channel loses (and first gains) the co-host's rights within a second."""
    import time

    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    redis = urlparse(REDIS_URL)
    need(_port_open(redis.hostname or "127.0.0.1", redis.port or 6379), f"Redis not reachable at {REDIS_URL}")
    schema = f"rt_{secrets.token_hex(4)}"
    await _create_schema(schema)
    env = {"ONAIR_DATABASE_URL": POSTGRES_URL, "ONAIR_DATABASE_SCHEMA": schema, "ONAIR_BROKER_URL": REDIS_URL,
           "ONAIR_BROKER_KEY_PREFIX": f"{schema}:", "ONAIR_JWT_SECRET": secrets.token_hex(32)}
    try:
        with ExitStack() as stack:
            a: OnairServer = stack.enter_context(run_server(tmp_path / "a", **env))
            b: OnairServer = stack.enter_context(run_server(tmp_path / "b", **env))
            seller = a.token("seller", "seller")
            sid = a.create_live_stream(seller)
            topic = f"realtime:stream:{sid}"
            async with websockets.connect(f"{b.ws_url}/websocket?apikey={b.anon_key}&vsn=2.0.0") as ws:
                await ws.send(json.dumps(["1", "1", topic, "phx_join", {"access_token": b.token("carol"), "config": {
                    "private": True, "broadcast": {"ack": True}, "postgres_changes": [
                        {"event": "*", "schema": "public", "table": "stream_viewers", "filter": f"stream_id=eq.{sid}"}]}}]))
                assert (await recv_until(ws, lambda m: m[3] == "phx_reply"))[4]["status"] == "ok"
                await recv_until(ws, lambda m: m[3] == "system" and m[4]["status"] == "error")
                await asyncio.sleep(0.5)  # node B's broker subscription settles

                async def offer(ref: str) -> str:
                    await ws.send(json.dumps(["1", ref, topic, "broadcast", {"type": "broadcast", "event": "webrtc:offer",
                                                                              "payload": {}}]))
                    return str((await recv_until(ws, lambda m: m[1] == ref))[4]["status"])

                assert await offer("2") == "error"
                assert a.api("POST", f"/api/v1/streams/{sid}/cohosts", seller, json={"user_id": "carol"}).status_code == 201
                await recv_until(ws, lambda m: m[3] == "system" and m[4]["status"] == "ok", timeout=1.0)
                assert await offer("3") == "ok"
                assert a.api("DELETE", f"/api/v1/streams/{sid}/cohosts/carol", seller).status_code == 204
                t0 = time.monotonic()
                await recv_until(ws, lambda m: m[3] == "system" and m[4]["status"] == "error", timeout=1.0)
                assert time.monotonic() - t0 < 1.0
                assert await offer("4") == "error"
    finally:
        await _create_schema(schema, drop=True)
