"""Issue 10 finding 1: a postgres_changes filter chosen by an anonymous client must not freeze the
server. ``body=match.(a+)+$`` plus a 26-character chat body used to stall every request and socket
for 4 s (and doubled per extra character); ``like`` with many ``%`` took minutes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.compat.onair_server import OnairServer, run_server

EVIL_FILTERS = ["body=match.(a+)+$", "body=like." + "%a" * 20 + "%b", "body=imatch.(a|aa)+$"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    with run_server(tmp_path_factory.mktemp("onair-filters")) as srv:
        yield srv


async def next_event(ws: Any, event: str, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while (msg := json.loads(await ws.recv()))[3] != event:
            pass
    return msg


async def test_catastrophic_filters_keep_the_server_responsive(server: OnairServer) -> None:
    stream = server.create_live_stream(server.token("seller-f", "seller"))
    buyer = {"Authorization": f"Bearer {server.token('buyer-f')}"}
    bindings = [{"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{stream},{f}"}
                for f in EVIL_FILTERS]
    url = f"{server.ws_url}/websocket?apikey={server.anon_key}&vsn=2.0.0"
    async with websockets.connect(url) as ws, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await ws.send(json.dumps(["1", "1", "realtime:evil", "phx_join", {"config": {"postgres_changes": bindings}}]))
        assert (await next_event(ws, "phx_reply"))[4]["status"] == "ok"
        assert (await next_event(ws, "system"))[4]["status"] == "ok"  # all three accepted: RE2 runs them

        async def probe() -> float:
            start = time.perf_counter()
            r = await http.get("/healthz", timeout=5)
            assert r.status_code == 200
            return time.perf_counter() - start

        for i in range(6):  # each used to cost from seconds to forever
            body = "a" * (40 + 40 * i) + "!"
            r = await http.post(f"/api/v1/streams/{stream}/chat", headers=buyer, json={"body": body, "client_msg_id": f"e{i}"})
            assert r.status_code == 201, r.text
            assert await probe() < 1.0
        probes = sorted([await probe() for _ in range(10)])
        assert probes[-1] < 1.0
        # and the filters still filter: only a body (a+)+$ matches reaches the socket
        r = await http.post(f"/api/v1/streams/{stream}/chat", headers=buyer, json={"body": "aaaa", "client_msg_id": "ok"})
        assert r.status_code == 201, r.text
        change = await next_event(ws, "postgres_changes")
        assert change[4]["data"]["record"]["body"] == "aaaa"


async def test_filters_re2_cannot_bound_are_refused_at_join(server: OnairServer) -> None:
    stream = server.create_live_stream(server.token("seller-g", "seller"))
    url = f"{server.ws_url}/websocket?apikey={server.anon_key}&vsn=2.0.0"
    async with websockets.connect(url) as ws:
        for i, (flt, reason) in enumerate([
            ("body=match.(a)\\1", "unsupported regular expression"),
            ("body=match.(?=a)", "unsupported regular expression"),
            ("body=like." + "_" * 200, "pattern too complex"),
            ("body=match." + "x" * 300, "pattern longer than 256 characters"),
            ("body=in.(" + ",".join(map(str, range(101))) + ")", "`in` filter may list at most 100 values"),
            (",".join(["body=eq.1"] * 11), "filter may have at most 10 conditions"),
        ]):
            binding = {"event": "*", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{stream},{flt}"}
            topic = f"realtime:refused{i}"
            await ws.send(json.dumps([str(i), str(i), topic, "phx_join", {"config": {"postgres_changes": [binding]}}]))
            assert (await next_event(ws, "phx_reply"))[4]["status"] == "ok"
            system = (await next_event(ws, "system"))[4]
            assert system["status"] == "error" and system["extension"] == "postgres_changes"
            assert reason in system["message"], system
