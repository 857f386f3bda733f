"""Issue 10 §2: server-only and host-only broadcast events cannot be forged by changing letter
case (or any Unicode spelling a client folds onto them), through a real ``onair serve`` on SQLite
and PostgreSQL: over the socket (vsn 1.0.0 JSON, vsn 2.0.0 arrays and binary pushes) and the REST
broadcast. A muted buyer, a plain buyer and the anon key are refused (``Unauthorized`` with ack;
REST skips them silently, as Supabase does); no other socket receives anything; the seller still
sends ``webrtc:*`` and the service role still sends server events."""

from __future__ import annotations

import asyncio
import json
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from onair.auth.jwt import mint_key
from onair.auth.keys import load_or_create_secret
from tests.compat.onair_server import OnairServer, run_server
from tests.conftest import POSTGRES_URL, _create_schema, need, postgres_available

FORGED = ["STREAM_STATE", "Stream_State", "WEBRTC:signal", "Webrtc:offer", "Seller:state", "SELLER:STATE",
          "TOKEN_RENEW", "ſtream_state", "ＳＴＲＥＡＭ_ＳＴＡＴＥ", "to\u212aen_renew", "v\u0130ewer_count",
          "stre\u0301am_state", "Chat_Sanction", "CHAT_SETTINGS", "ｗｅｂｒｔｃ：signal",
          "SHOWCASE", "ShowCase", "ſhowcaſe", "ｓｈｏｗｃａｓｅ", "show\u200bcase",  # issue 14
          # and the exact names, refused before this fix too
          "stream_state", "webrtc:signal", "seller:state", "token_renew"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    env: dict[str, str] = {}
    if request.param == "postgresql":
        need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
        schema = f"forged_{secrets.token_hex(4)}"
        asyncio.run(_create_schema(schema))
        env = {"ONAIR_DATABASE_URL": POSTGRES_URL, "ONAIR_DATABASE_SCHEMA": schema}
    with run_server(tmp_path_factory.mktemp(f"forged-{request.param}"), **env) as srv:
        yield srv
    if request.param == "postgresql":
        asyncio.run(_create_schema(env["ONAIR_DATABASE_SCHEMA"], drop=True))


class Socket:
    """One realtime connection joined to one topic; every message it gets is kept."""

    def __init__(self, ws: Any, vsn: str, topic: str) -> None:
        self.ws, self.vsn, self.topic = ws, vsn, topic
        self.inbox: list[tuple[Any, ...]] = []
        self.refs = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: OnairServer, vsn: str, topic: str, token: str | None, private: bool) -> Socket:
        ws = await websockets.connect(f"{server.ws_url}/websocket?apikey={server.anon_key}&vsn={vsn}")
        sock = cls(ws, vsn, topic)
        payload: dict[str, Any] = {"config": {"broadcast": {"ack": True, "self": False},
                                              "presence": {"key": ""}, "private": private}}
        if token:
            payload["access_token"] = token
        reply = await sock.request("phx_join", payload, join_ref="1")
        assert reply["status"] == "ok", reply
        return sock

    async def _read(self) -> None:
        async for raw in self.ws:
            if isinstance(raw, bytes):
                continue
            msg = json.loads(raw)
            if isinstance(msg, dict):
                msg = [msg.get("join_ref"), msg.get("ref"), msg["topic"], msg["event"], msg["payload"]]
            self.inbox.append(tuple(msg))

    def _ref(self) -> str:
        self.refs += 1
        return f"r{self.refs}"

    async def send(self, event: str, payload: Any, join_ref: str | None = "1") -> str:
        ref = self._ref()
        if self.vsn == "1.0.0":
            frame = json.dumps({"topic": self.topic, "event": event, "payload": payload, "ref": ref,
                                "join_ref": join_ref})
        else:
            frame = json.dumps([join_ref, ref, self.topic, event, payload])
        await self.ws.send(frame)
        return ref

    async def send_binary(self, event: str, payload: dict[str, Any]) -> str:
        """A vsn 2.0.0 kind-3 user broadcast (spec §2.3), JSON payload."""
        ref = self._ref()
        fields = [b"1", ref.encode(), self.topic.encode(), event.encode(), b""]
        frame = struct.pack("!B5BB", 3, *map(len, fields), 1) + b"".join(fields) + json.dumps(payload).encode()
        await self.ws.send(frame)
        return ref

    async def reply(self, ref: str, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for msg in self.inbox:
                    if msg[1] == ref and msg[3] == "phx_reply":
                        return msg[4]  # type: ignore[no-any-return]
                await asyncio.sleep(0.01)

    async def request(self, event: str, payload: Any, join_ref: str | None = "1") -> dict[str, Any]:
        return await self.reply(await self.send(event, payload, join_ref))

    def broadcasts(self) -> list[tuple[str, Any]]:
        return [(m[4]["event"], m[4].get("payload")) for m in self.inbox if m[3] == "broadcast"]

    async def wait_for(self, event: str, marker: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not any(e == event and isinstance(p, dict) and p.get("marker") == marker
                          for e, p in self.broadcasts()):
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def test_forged_spellings_are_refused_everywhere(server: OnairServer) -> None:
    seller = server.token("fx-seller", "seller")
    sid = server.create_live_stream(seller)
    topic = f"realtime:stream:{sid}"
    muted, buyer = server.token("fx-muted"), server.token("fx-buyer")
    sanction = server.api("POST", f"/api/v1/streams/{sid}/chat/sanctions", seller,
                          json={"user_id": "fx-muted", "kind": "mute", "duration_seconds": 600})
    assert sanction.status_code == 201, sanction.text
    service_key = mint_key(load_or_create_secret(Path(server.data_dir)), "service_role", 10 * 365 * 86400)

    viewer = await Socket.open(server, "2.0.0", topic, server.token("fx-viewer"), private=True)
    viewer_v1 = await Socket.open(server, "1.0.0", topic, server.token("fx-viewer-2"), private=True)
    host = await Socket.open(server, "2.0.0", topic, seller, private=True)
    anon_viewer = await Socket.open(server, "2.0.0", topic, None, private=False)
    attackers = {
        "muted": await Socket.open(server, "2.0.0", topic, muted, private=True),
        "buyer": await Socket.open(server, "1.0.0", topic, buyer, private=True),
        "anon": await Socket.open(server, "2.0.0", topic, None, private=False),
    }
    watchers = [viewer, viewer_v1, host, anon_viewer]
    try:
        for who, sock in attackers.items():
            for name in FORGED:
                reply = await sock.request("broadcast", {"type": "broadcast", "event": name,
                                                         "payload": {"forged": who}})
                assert reply == {"status": "error", "response": {"reason": "Unauthorized"}}, (who, name)
                if sock.vsn == "2.0.0":
                    reply = await sock.reply(await sock.send_binary(name, {"forged": who}))
                    assert reply["status"] == "error", (who, name)

        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for who, token in [("muted", muted), ("buyer", buyer), ("anon", server.anon_key)]:
                headers = {"Authorization": f"Bearer {token}", "apikey": server.anon_key}
                messages = [{"topic": f"stream:{sid}", "event": name, "payload": {"forged": f"rest-{who}"},
                             "private": private} for name in FORGED for private in (True, False)]
                got = await http.post("/realtime/v1/api/broadcast", json={"messages": messages}, headers=headers)
                assert got.status_code == 202, got.text
                for name in ["STREAM_STATE", "WEBRTC:signal", "Seller:state"]:
                    got = await http.post(f"/realtime/v1/api/broadcast/stream:{sid}/events/{name}",
                                          json={"forged": f"rest-one-{who}"}, headers=headers)
                    assert got.status_code == 202, got.text

            # what stays allowed: open names from members (not from the muted: a mute silences
            # every broadcast), host events from the seller, server events from the service role
            # (REST, as back ends send them)
            reply = await attackers["buyer"].request("broadcast", {"type": "broadcast", "event": "reaction",
                                                                   "payload": {"marker": "buyer"}})
            assert reply["status"] == "ok"
            reply = await attackers["muted"].request("broadcast", {"type": "broadcast", "event": "reaction",
                                                                   "payload": {"forged": "muted"}})
            assert reply["status"] == "error"
            assert (await host.request("broadcast", {"type": "broadcast", "event": "webrtc:signal",
                                                     "payload": {"marker": "host", "from": "host:fx-seller:tab1"}}))["status"] == "ok"
            service = {"Authorization": f"Bearer {service_key}", "apikey": server.anon_key}
            got = await http.post("/realtime/v1/api/broadcast", headers=service, json={"messages": [
                {"topic": f"stream:{sid}", "event": "stream_state", "payload": {"marker": "service"}, "private": True}]})
            assert got.status_code == 202

        for sock in (viewer, viewer_v1):
            for event, marker in [("reaction", "buyer"),
                                  ("webrtc:signal", "host"), ("stream_state", "service")]:
                await sock.wait_for(event, marker)
        await anon_viewer.wait_for("stream_state", "service")
        await asyncio.sleep(0.3)  # anything forged was sent long before the markers
        for sock in watchers:
            leaked = [(e, p) for e, p in sock.broadcasts() if isinstance(p, dict) and "forged" in p]
            assert leaked == []
    finally:
        for sock in [*watchers, *attackers.values()]:
            await sock.close()
