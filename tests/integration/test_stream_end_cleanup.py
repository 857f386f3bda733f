"""Issue 11 §5 through a real server and real WebSockets (SQLite and PostgreSQL): the end of a
stream closes its realtime channel after the final state and the last chat rows (``system`` with
status ok "The stream has ended", then ``phx_close``), a channel joined after the end is closed
too, and after many streams were created, used and ended every in-process map keyed by stream,
topic or user is back where it started."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select

from onair.realtime.policies import StreamPolicy
from onair.services.stream_cache import CACHE_TOPIC
from onair.settings import Settings
from onair.store.tables import stream_uids
from tests.conftest import REDIS_URL, need_redis
from tests.security.server import LiveServer, live_server, realtime_tables

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
GRACE = 0.6  # realtime_ended_close_delay in these tests
UID_CACHE = 5


@pytest.fixture(params=["memory", "redis"])
async def srv(request: pytest.FixtureRequest, backend: dict[str, Any], free_port: int) -> AsyncIterator[LiveServer]:
    extra: dict[str, Any] = {}
    if request.param == "redis":  # several processes' machinery: chat reorder, shared presence
        need_redis()
        extra["broker_url"] = REDIS_URL
    settings = Settings(_env_file=None, jwt_secret="end-" + "x" * 48, reaper_interval=3600,
                        realtime_sweep_interval=0.2, realtime_ended_close_delay=GRACE,
                        realtime_unsubscribe_delay=0.2, agora_app_id=APP_ID,
                        agora_app_certificate=CERT, agora_uid_cache_size=UID_CACHE,
                        agora_token_rate_limit="100000/minute", **backend, **extra)
    async with live_server(settings, free_port) as server:
        yield server


class Rest:
    def __init__(self, srv: LiveServer, http: httpx.AsyncClient) -> None:
        self.srv, self.http = srv, http

    def auth(self, user: str, role: str = "buyer") -> dict[str, str]:
        return {"authorization": f"Bearer {self.srv.token(user, role)}"}

    async def call(self, method: str, path: str, user: str, role: str = "buyer", **kw: Any) -> Any:
        r = await self.http.request(method, f"/api/v1{path}", headers=self.auth(user, role), **kw)
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r.json() if r.content else None

    async def live_stream(self, seller: str) -> str:
        sid = (await self.call("POST", "/streams", seller, "seller", json={"title": "t"}))["id"]
        await self.call("POST", f"/streams/{sid}/start", seller, "seller")
        return str(sid)


@pytest.fixture
async def rest(srv: LiveServer) -> AsyncIterator[Rest]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        yield Rest(srv, http)


class Sock:
    def __init__(self, ws: Any) -> None:
        self.ws, self.seen = ws, []  # type: ignore[var-annotated]
        self.refs = iter(range(1, 10**6))

    async def join(self, topic: str, token: str, **config: Any) -> str:
        ref = str(next(self.refs))
        await self.ws.send(json.dumps([ref, ref, topic, "phx_join", {"config": config, "access_token": token}]))
        reply = await self.until(lambda m: m[3] == "phx_reply" and m[1] == ref)
        assert reply[4]["status"] == "ok", reply
        return ref

    async def until(self, pred: Any, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                msg = json.loads(await self.ws.recv())
                self.seen.append(msg)
                if pred(msg):
                    return msg


def chat_binding(sid: str) -> list[dict[str, str]]:
    return [{"event": "*", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{sid}"}]


def is_close(topic: str) -> Any:
    return lambda m: m[2] == topic and m[3] == "phx_close"


async def test_end_closes_the_channel_after_the_final_state_and_last_chat(srv: LiveServer, rest: Rest) -> None:
    seller, buyer = f"s-{secrets.token_hex(3)}", f"b-{secrets.token_hex(3)}"
    sid = await rest.live_stream(seller)
    topic = f"realtime:stream:{sid}"
    async with websockets.connect(srv.ws_url()) as ws:
        sock = Sock(ws)
        join_ref = await sock.join(topic, srv.token(buyer), private=True, postgres_changes=chat_binding(sid))
        await rest.call("POST", f"/streams/{sid}/chat", seller, "seller",
                        json={"body": "last words", "client_msg_id": "last"})
        await rest.call("POST", f"/streams/{sid}/end", seller, "seller")
        close = await sock.until(is_close(topic))
        kinds = [(m[3], (m[4].get("event") or m[4].get("data", {}).get("type") or m[4].get("status")))
                 for m in sock.seen if m[2] == topic]
        state = next(i for i, m in enumerate(sock.seen) if m[3] == "broadcast" and m[4]["event"] == "stream_state"
                     and m[4]["payload"]["stream"]["status"] == "ended")
        chat = next(i for i, m in enumerate(sock.seen) if m[3] == "postgres_changes"
                    and m[4]["data"]["record"]["body"] == "last words")
        system = next(i for i, m in enumerate(sock.seen) if m[3] == "system" and m[4].get("extension") == "system")
        assert chat < system and state < system < sock.seen.index(close), kinds
        assert sock.seen[system][4] == {"extension": "system", "status": "ok",
                                        "message": "The stream has ended", "channel": f"stream:{sid}"}
        assert close[0] == close[1] == join_ref  # Supabase: phx_close carries the join_ref twice
        # chat history and the final state stay readable over REST
        page = await rest.call("GET", f"/streams/{sid}/chat", buyer)
        assert [m["body"] for m in page["messages"]] == ["last words"]
        assert (await rest.call("GET", f"/streams/{sid}", buyer))["status"] == "ended"
        # the socket itself stays usable
        await ws.send(json.dumps([None, "hb", "phoenix", "heartbeat", {}]))
        await sock.until(lambda m: m[1] == "hb")


async def test_a_channel_joined_after_the_end_is_closed_too(srv: LiveServer, rest: Rest) -> None:
    seller = f"s-{secrets.token_hex(3)}"
    sid = await rest.live_stream(seller)
    await rest.call("POST", f"/streams/{sid}/end", seller, "seller")
    topic = f"realtime:stream:{sid}"
    async with websockets.connect(srv.ws_url()) as ws:
        sock = Sock(ws)
        await sock.join(topic, srv.token("late-viewer"), private=True)
        await sock.until(is_close(topic), timeout=GRACE + 5)
        assert any(m[3] == "system" and m[4].get("message") == "The stream has ended" for m in sock.seen)
    await settled(srv)


async def settled(srv: LiveServer, timeout: float = 10.0) -> None:
    """Wait for the sweep to drop what the closed channels left behind."""
    service = srv.realtime
    async with asyncio.timeout(timeout):
        while (service.hub.topics or service.events._ended or service.events._stream_versions
               or srv.ctx.broker.topics - {CACHE_TOPIC}
               or (service.events.chat_order is not None and service.events.chat_order._streams)):
            await asyncio.sleep(0.05)


def stream_maps(srv: LiveServer) -> dict[str, int]:
    """Every in-process map keyed by stream, topic or user (issue 11 §5), by size."""
    service, ctx = srv.realtime, srv.ctx
    tables = realtime_tables(service)
    for gone in ("clients", "ips", "users", "budgets"):  # the sockets are still open
        tables.pop(gone)
    policy = service.authorizer
    assert isinstance(policy, StreamPolicy)
    return {**tables, "pinned": policy.sizes()["pinned"], "pins": len(policy._pins),
            "policy_inflight": len(policy._inflight), "ended": len(service.events._ended),
            "subscriptions": len(service.node._subscriptions), "unsubscribing": len(service.node._unsubscribing),
            "interrupted": len(service.node._interrupted),
            "broker_topics": len(ctx.broker.topics - {CACHE_TOPIC}),  # the cache's stays
            # the Redis broker's own maps of topics subscribed and being confirmed (the cache's stays)
            "broker_live": len(set(getattr(ctx.broker, "_live", {}).values()) - {CACHE_TOPIC}),
            "broker_pending": len(getattr(ctx.broker, "_pending", ())),
            "chat_order": len(service.events.chat_order._streams) if service.events.chat_order is not None else 0}


async def test_maps_return_to_baseline_after_many_streams_end(srv: LiveServer, rest: Rest) -> None:
    baseline = stream_maps(srv)
    assert not any(baseline.values()), baseline
    streams, run = 12, secrets.token_hex(3)
    sids: list[str] = []
    async with websockets.connect(srv.ws_url()) as ws_a, websockets.connect(srv.ws_url()) as ws_b:
        a, b = Sock(ws_a), Sock(ws_b)
        for n in range(streams):
            seller, buyer = f"seller-{run}-{n}", f"buyer-{run}-{n}"
            sid = await rest.live_stream(seller)
            sids.append(sid)
            topic = f"realtime:stream:{sid}"
            join_ref = await a.join(topic, srv.token(buyer), private=True, postgres_changes=chat_binding(sid),
                                    presence={"key": buyer})
            ref = str(next(a.refs))
            await ws_a.send(json.dumps([join_ref, ref, topic, "presence", {"event": "track", "payload": {"n": n}}]))
            await a.until(lambda m, ref=ref: m[1] == ref)
            if n == 0 and srv.realtime.presence is not None:  # the check below looks at real keys
                client = srv.realtime.presence._client
                assert [k async for k in client.scan_iter(match=f"*presence:*{sid}")]
            await b.join(topic, srv.token(seller, "seller"), private=True)
            await rest.call("POST", f"/streams/{sid}/viewers", buyer)
            await rest.call("POST", f"/streams/{sid}/rtc-token", buyer, json={})
            await rest.call("POST", f"/streams/{sid}/chat", buyer, json={"body": f"hi {n}", "client_msg_id": f"c{n}"})
            await rest.call("POST", f"/streams/{sid}/end", seller, "seller")
            await a.until(is_close(topic))
            await b.until(is_close(topic))
            # an ended stream issues no token, and allocates (and caches) no uid for it
            r = await rest.http.post(f"/api/v1/streams/{sid}/rtc-token", headers=rest.auth(f"late-{run}-{n}"), json={})
            assert r.status_code == 409
        await settled(srv)
        assert stream_maps(srv) == baseline
        assert len(srv.ctx.tokens._uids) <= UID_CACHE  # least recently used out: bounded
        # what outlives a stream in memory is bounded: the policy's recent facts and known-absent
        # streams are LRU maps of at most max_streams entries
        policy = srv.realtime.authorizer
        assert isinstance(policy, StreamPolicy)
        assert all(n <= policy.max_streams for n in policy.sizes().values())
        if srv.realtime.presence is not None:  # shared presence (Redis): each stream's hash is gone
            client = srv.realtime.presence._client
            keys: list[Any] = []
            for sid in sids:
                keys += [k async for k in client.scan_iter(match=f"*presence:*{sid}")]
            assert keys == []
    async with srv.ctx.db.read() as conn:
        late = (await conn.execute(select(stream_uids.c.user_id)
                                   .where(stream_uids.c.user_id.like(f"late-{run}-%")))).all()
    assert late == []
