"""Issue 10 §5 and §6 against a real ``onair serve`` (SQLite and PostgreSQL), on open sockets:
role changes, sanctions and the end of a stream take effect on channels already joined within a
second; change events and server events carry only what their reader may see."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.compat.onair_server import OnairServer, run_server
from tests.conftest import POSTGRES_URL, _create_schema, need, postgres_available

SOON = 1.0  # seconds: "within a second" (issue 10 §5)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    env = {"ONAIR_JWT_SECRET": secrets.token_hex(32)}
    schema = None
    if request.param == "postgresql":
        need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
        schema = f"authz_{secrets.token_hex(4)}"
        asyncio.run(_create_schema(schema))
        env |= {"ONAIR_DATABASE_URL": POSTGRES_URL, "ONAIR_DATABASE_SCHEMA": schema}
    try:
        with run_server(tmp_path_factory.mktemp("authz"), **env) as srv:
            yield srv
    finally:
        if schema is not None:
            asyncio.run(_create_schema(schema, drop=True))


class Sock:
    """One realtime socket (vsn 2.0.0) that keeps what it received."""

    def __init__(self, ws: Any, topic: str) -> None:
        self.ws, self.topic, self.seen = ws, topic, []  # type: ignore[var-annotated]
        self.refs = iter(range(10, 10_000))

    async def join(self, token: str | None, **config: Any) -> Any:
        payload: dict[str, Any] = {"config": config}
        if token is not None:
            payload["access_token"] = token
        await self.ws.send(json.dumps(["1", "1", self.topic, "phx_join", payload]))
        return await self.expect(lambda m: m[3] == "phx_reply" and m[1] == "1")

    async def push(self, event: str, payload: Any) -> Any:
        ref = str(next(self.refs))
        await self.ws.send(json.dumps(["1", ref, self.topic, event, payload]))
        return ref

    async def send(self, event: str, ack: bool = True) -> str | None:
        """A client broadcast; with ack the reply's status."""
        ref = await self.push("broadcast", {"type": "broadcast", "event": event, "payload": {"x": 1}})
        if not ack:
            return None
        return str((await self.expect(lambda m: m[1] == ref))[4]["status"])

    async def expect(self, predicate: Any, timeout: float = 5.0) -> Any:
        for msg in self.seen:
            if predicate(msg):
                self.seen.remove(msg)
                return msg

        async def loop() -> Any:
            while True:
                msg = json.loads(await self.ws.recv())
                if predicate(msg):
                    return msg
                self.seen.append(msg)
        return await asyncio.wait_for(loop(), timeout)

    async def drain(self, wait: float = 0.3) -> list[Any]:
        try:
            while True:
                self.seen.append(json.loads(await asyncio.wait_for(self.ws.recv(), wait)))
        except TimeoutError:
            pass
        out, self.seen = self.seen, []
        return out


def connect(server: OnairServer) -> Any:
    return websockets.connect(f"{server.ws_url}/websocket?apikey={server.anon_key}&vsn=2.0.0")


def live_stream(server: OnairServer) -> tuple[str, str]:
    seller = server.token(f"seller-{secrets.token_hex(3)}", "seller")
    return server.create_live_stream(seller), seller


def system(status: str) -> Any:
    return lambda m: m[3] == "system" and m[4].get("extension") == "postgres_changes" and m[4]["status"] == status


def viewers_binding(sid: str) -> list[dict[str, str]]:
    return [{"event": "*", "schema": "public", "table": "stream_viewers", "filter": f"stream_id=eq.{sid}"}]


async def test_invite_and_demotion_apply_to_an_open_channel(server: OnairServer) -> None:
    sid, seller = live_stream(server)
    carol = f"carol-{secrets.token_hex(3)}"
    async with connect(server) as ws:
        sock = Sock(ws, f"realtime:stream:{sid}")
        assert (await sock.join(server.token(carol), private=True, broadcast={"ack": True},
                                postgres_changes=viewers_binding(sid)))[4]["status"] == "ok"
        await sock.expect(system("error"))  # not an owner: no viewer rows
        assert await sock.send("webrtc:offer") == "error"

        r = server.api("POST", f"/api/v1/streams/{sid}/cohosts", seller, json={"user_id": carol})
        assert r.status_code == 201, r.text
        t0 = time.monotonic()
        await sock.expect(system("ok"), timeout=SOON)  # the binding is switched on at once
        assert time.monotonic() - t0 < SOON
        assert await sock.send("webrtc:offer") == "ok"
        r = server.api("POST", f"/api/v1/streams/{sid}/viewers", server.token(f"dave-{secrets.token_hex(3)}"))
        assert r.status_code == 200, r.text
        await sock.expect(lambda m: m[3] == "postgres_changes" and m[4]["data"]["table"] == "stream_viewers", timeout=SOON)

        r = server.api("DELETE", f"/api/v1/streams/{sid}/cohosts/{carol}", seller)
        assert r.status_code == 204, r.text
        await sock.expect(system("error"), timeout=SOON)
        assert await sock.send("webrtc:offer") == "error"
        assert await sock.send("seller:state") == "error"
        r = server.api("POST", f"/api/v1/streams/{sid}/viewers", server.token(f"eve-{secrets.token_hex(3)}"))
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.5)
        assert not [m for m in await sock.drain() if m[3] == "postgres_changes"]
        assert await sock.send("reaction") == "ok"  # still an ordinary member


async def test_mute_ban_lift_apply_to_open_channels_and_stay_private(server: OnairServer) -> None:
    sid, seller = live_stream(server)
    bob = f"bob-{secrets.token_hex(3)}"
    sanctions = f"/api/v1/streams/{sid}/chat/sanctions"
    topic = f"realtime:stream:{sid}"
    async with connect(server) as ws_bob, connect(server) as ws_anon, connect(server) as ws_seller:
        b, anon, s = Sock(ws_bob, topic), Sock(ws_anon, topic), Sock(ws_seller, topic)
        assert (await b.join(server.token(bob), private=True, broadcast={"ack": True}))[4]["status"] == "ok"
        assert (await anon.join(None))[4]["status"] == "ok"
        assert (await s.join(seller, private=True))[4]["status"] == "ok"
        assert await b.send("reaction") == "ok"

        mute = {"user_id": bob, "kind": "mute", "duration_seconds": 600}
        assert server.api("POST", sanctions, seller, json=mute).status_code == 201
        told = await s.expect(lambda m: m[3] == "broadcast" and m[4]["event"] == "chat_sanction", timeout=SOON)
        assert told[4]["payload"]["user_id"] == bob
        await b.expect(lambda m: m[3] == "broadcast" and m[4]["event"] == "chat_sanction", timeout=SOON)
        assert await b.send("reaction") == "error"  # a mute silences side channels too
        await b.push("presence", {"type": "presence", "event": "track", "payload": {"note": "call me"}})
        assert (await b.expect(lambda m: m[3] == "phx_reply" and m[1] != "1"))[4]["status"] == "error"

        assert server.api("DELETE", f"{sanctions}/{bob}", seller).status_code == 200
        await s.expect(lambda m: m[3] == "broadcast" and m[4]["payload"].get("lifted"), timeout=SOON)
        assert await b.send("reaction") == "ok"

        assert server.api("POST", sanctions, seller, json={"user_id": bob, "kind": "ban"}).status_code == 201
        closed = await b.expect(lambda m: m[3] == "phx_close", timeout=SOON)
        assert closed[2] == topic
        await s.expect(lambda m: m[3] == "broadcast" and m[4]["event"] == "chat_sanction", timeout=SOON)
        # anonymous members learn nothing about who was sanctioned
        assert not [m for m in await anon.drain(0.5) if m[3] == "broadcast" and m[4]["event"] == "chat_sanction"]


async def test_end_stops_client_writes_but_keeps_reading(server: OnairServer) -> None:
    sid, seller = live_stream(server)
    topic = f"realtime:stream:{sid}"
    async with connect(server) as ws_seller, connect(server) as ws_buyer:
        s, b = Sock(ws_seller, topic), Sock(ws_buyer, topic)
        assert (await s.join(seller, private=True, broadcast={"ack": True}))[4]["status"] == "ok"
        assert (await b.join(server.token("buyer-end"), private=True, broadcast={"ack": True}))[4]["status"] == "ok"
        assert await s.send("webrtc:offer") == "ok"
        assert server.api("POST", f"/api/v1/streams/{sid}/end", seller).status_code == 200
        await b.expect(lambda m: m[3] == "broadcast" and m[4]["event"] == "stream_state", timeout=SOON)
        assert await s.send("webrtc:offer") == "error"
        assert await s.send("seller:state") == "error"
        assert await b.send("reaction") == "error"
        assert server.api("GET", f"/api/v1/streams/{sid}/chat", seller).status_code == 200
        await b.ws.send(json.dumps([None, "hb", "phoenix", "heartbeat", {}]))
        await b.expect(lambda m: m[1] == "hb")
        # reading the final state is fine: the only close is the end's own, after its grace
        # (issue 11 §5: `system` status ok "The stream has ended", then phx_close), never a refusal
        rest = await b.drain()
        refusals = [m for m in rest if m[3] == "system" and m[4].get("status") == "error"]
        assert not refusals, refusals
        closes = [i for i, m in enumerate(rest) if m[3] == "phx_close"]
        notices = [i for i, m in enumerate(rest) if m[3] == "system" and m[4].get("message") == "The stream has ended"]
        assert not closes or (notices and notices[0] < closes[0]), rest


async def test_change_events_carry_no_hidden_text(server: OnairServer) -> None:
    sid, seller = live_stream(server)
    buyer = server.token(f"buyer-{secrets.token_hex(3)}")
    async with connect(server) as ws:
        anon = Sock(ws, f"realtime:stream:{sid}")
        chat = {"event": "*", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{sid}"}
        cohosts = {"event": "*", "schema": "public", "table": "stream_cohosts"}
        reply = await anon.join(None, postgres_changes=[chat, cohosts])
        assert reply[4]["status"] == "ok"
        error = await anon.expect(system("error"))
        assert "stream_cohosts" in error[4]["message"]  # every stream's co-hosts: refused
        await anon.expect(system("ok"))

        # A marker no timestamp, id or digest can contain, so a hit means the old body leaked.
        secret = "call-me-on-PHONE-NUMBER"
        sent = server.api("POST", f"/api/v1/streams/{sid}/chat", buyer,
                          json={"body": secret, "client_msg_id": "leak-1"}).json()
        url = f"/api/v1/streams/{sid}/chat/{sent['id']}"
        assert server.api("PATCH", url, buyer, json={"body": "hello"}).status_code == 200
        assert server.api("DELETE", url, seller).status_code == 200
        assert server.api("POST", f"/api/v1/streams/{sid}/cohosts", seller, json={"user_id": "someone"}).status_code == 201

        changes = []
        for _ in range(3):
            changes.append(await anon.expect(lambda m: m[3] == "postgres_changes"))
        inserted, edited, deleted = (c[4]["data"] for c in changes)
        assert inserted["type"] == "INSERT" and inserted["record"]["body"] == secret
        assert edited["record"]["body"] == "hello" and secret not in json.dumps(edited)
        assert set(edited["old_record"]) <= {"id", "stream_id", "seq", "sender_id"}
        assert deleted["record"]["body"] == "" and "hello" not in json.dumps(deleted) and secret not in json.dumps(deleted)
        assert not [m for m in await anon.drain(0.5) if m[3] == "postgres_changes"]  # no co-host rows


async def test_cohost_rows_need_a_user_and_a_stream_filter(server: OnairServer) -> None:
    sid, seller = live_stream(server)
    binding = [{"event": "*", "schema": "public", "table": "stream_cohosts", "filter": f"stream_id=eq.{sid}"}]
    async with connect(server) as ws_anon, connect(server) as ws_user:
        anon, user = Sock(ws_anon, f"realtime:stream:{sid}"), Sock(ws_user, f"realtime:stream:{sid}")
        assert (await anon.join(None, postgres_changes=binding))[4]["status"] == "ok"
        await anon.expect(system("error"))
        assert (await user.join(server.token("reader"), postgres_changes=binding))[4]["status"] == "ok"
        await user.expect(system("ok"))
        assert server.api("POST", f"/api/v1/streams/{sid}/cohosts", seller, json={"user_id": "co"}).status_code == 201
        row = await user.expect(lambda m: m[3] == "postgres_changes", timeout=SOON)
        assert row[4]["data"]["record"]["user_id"] == "co"
        # token_renew names who was promoted: only they, the owners and staff hear it
        assert not [m for m in await anon.drain(0.5) if m[3] in ("postgres_changes", "broadcast")]
        assert not [m for m in await user.drain(0.2) if m[3] == "broadcast" and m[4]["event"] == "token_renew"]
