"""Two onair processes on one PostgreSQL + Redis with a 300 s cache: a change made through node A
(ban, demotion, end) is what node B answers right away, though B had the old facts cached
(issue 11 §4, §8). Only the invalidation published on ``onair:cache`` can make that happen."""
# A refused REST broadcast is answered 202 as well (Supabase drops it silently), so bob's rights
# on node B are read from a realtime join there, which the same cached facts decide.

from __future__ import annotations

import asyncio
import json
import secrets
import time
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlparse

import httpx
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
from tests.integration.test_tokens_api import APP_ID, CERT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


REMOTE = 'onair_cache_invalidations_total{source="remote"}'


def metric(server: OnairServer, line_start: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


async def test_changes_on_one_node_reach_the_other_nodes_cache(tmp_path: Any) -> None:
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    redis = urlparse(REDIS_URL)
    need(_port_open(redis.hostname or "127.0.0.1", redis.port or 6379), f"Redis not reachable at {REDIS_URL}")
    schema = f"cache_{secrets.token_hex(4)}"
    await _create_schema(schema)
    env = {"ONAIR_DATABASE_URL": POSTGRES_URL, "ONAIR_DATABASE_SCHEMA": schema, "ONAIR_BROKER_URL": REDIS_URL,
           "ONAIR_BROKER_KEY_PREFIX": f"{schema}:", "ONAIR_JWT_SECRET": secrets.token_hex(32),
           "ONAIR_CACHE_TTL": "300", "ONAIR_REALTIME_POLICY_CACHE_TTL": "60",
           "ONAIR_AGORA_APP_ID": APP_ID, "ONAIR_AGORA_APP_CERTIFICATE": CERT,
           "ONAIR_METRICS_SYNC_INTERVAL": "0.1"}
    try:
        with ExitStack() as stack:
            a: OnairServer = stack.enter_context(run_server(tmp_path / "a", **env))
            b: OnairServer = stack.enter_context(run_server(tmp_path / "b", **env))
            seller, bob = a.token("seller", "seller"), b.token("bob")
            sid = a.create_live_stream(seller)
            path = f"/api/v1/streams/{sid}"

            async def joins() -> str:
                async with websockets.connect(f"{b.ws_url}/websocket?apikey={b.anon_key}&vsn=2.0.0") as ws:
                    await ws.send(json.dumps(["1", "1", f"realtime:stream:{sid}", "phx_join",
                                              {"access_token": bob, "config": {}}]))
                    while True:
                        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if reply[3] == "phx_reply":
                            return str(reply[4]["status"])

            # node B caches the stream, bob's rights (a REST broadcast: facts kept 60 s) and co-hosts
            assert a.api("POST", f"{path}/cohosts", seller, json={"user_id": "bob"}).status_code == 201
            for _ in range(3):
                assert b.api("GET", path, bob).json()["status"] == "live"
                assert b.api("POST", f"/realtime/v1/api/broadcast/stream:{sid}/events/hello", bob,
                             json={"x": 1}).status_code == 202
            assert b.api("POST", f"{path}/rtc-token", bob, json={"role": "publisher"}).json()["role"] == "publisher"
            assert metric(b, 'onair_cache_lookups_total{cache="stream",result="hit"}') >= 2

            def arrived(before: float) -> float:
                """Until node B counted another invalidation from elsewhere (it reached B)."""
                start = time.monotonic()
                while (now := metric(b, REMOTE)) <= before:
                    assert time.monotonic() - start < 5.0, "no invalidation reached node B"
                    time.sleep(0.05)
                return now

            # demotion on A: B issues bob no publisher token (decided in its transaction)
            time.sleep(0.3)  # a metrics sync: the drops so far are counted
            seen = metric(b, REMOTE)
            assert a.api("DELETE", f"{path}/cohosts/bob", seller).status_code == 204
            refused = b.api("POST", f"{path}/rtc-token", bob, json={"role": "publisher"})
            assert refused.json()["type"] == "not-a-publisher", refused.text
            seen = arrived(seen)

            # ban on A: B refuses bob's chat at once, and his join once the drop arrived
            ban = a.api("POST", f"{path}/chat/sanctions", seller, json={"user_id": "bob", "kind": "ban"})
            assert ban.status_code == 201, ban.text
            sent = b.api("POST", f"{path}/chat", bob, json={"body": "hi", "client_msg_id": "m1"})
            assert sent.json()["type"] == "chat-banned", sent.text
            seen = arrived(seen)
            assert await joins() == "error"  # the first try: no stale "ok" from the 60 s facts

            # end on A: B shows it ended and refuses tokens
            assert a.api("POST", f"{path}/end", seller).status_code == 200
            arrived(seen)
            assert b.api("GET", path, bob).json()["status"] == "ended"
            ended = b.api("POST", f"{path}/rtc-token", b.token("carol"))
            assert ended.json()["type"] == "stream-ended", ended.text
    finally:
        await _create_schema(schema, drop=True)
