"""The official Python client (``realtime`` from PyPI, vsn 1.0.0) against a real ``onair serve``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from tests.compat.onair_server import OnairServer, run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    with run_server(tmp_path_factory.mktemp("onair")) as srv:
        yield srv


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def subscribed(channel: Any) -> list[Any]:
    states: list[Any] = []
    await channel.subscribe(lambda state, err: states.append((state, err)))
    await eventually(lambda: states)
    return states


async def test_broadcast_self_and_presence(server: OnairServer) -> None:
    a = AsyncRealtimeClient(server.ws_url, server.anon_key, auto_reconnect=False)
    b = AsyncRealtimeClient(server.ws_url, server.token("bob"), auto_reconnect=False)
    await a.connect()
    await b.connect()
    got_a: list[Any] = []
    got_b: list[Any] = []
    syncs: list[Any] = []
    joins: list[str] = []
    ch_a = a.channel("room1", {"config": {"broadcast": {"self": True, "ack": True}, "presence": {"key": "alice"}}})
    ch_a.on_broadcast("cursor", lambda p: got_a.append(p))
    ch_a.on_presence_sync(lambda: syncs.append(dict(ch_a.presence_state())))
    ch_a.on_presence_join(lambda key, cur, new: joins.append(key))
    ch_b = b.channel("room1", {"config": {"broadcast": {"self": False}, "presence": {"key": "bob"}}})
    ch_b.on_broadcast("cursor", lambda p: got_b.append(p))
    assert (await subscribed(ch_a))[0][0] == RealtimeSubscribeStates.SUBSCRIBED
    assert (await subscribed(ch_b))[0][0] == RealtimeSubscribeStates.SUBSCRIBED
    await ch_b.track({"name": "bob"})
    await eventually(lambda: "bob" in joins)
    await eventually(lambda: syncs and "bob" in syncs[-1])
    await ch_a.send_broadcast("cursor", {"x": 1})
    await ch_b.send_broadcast("cursor", {"x": 2})
    await eventually(lambda: len(got_a) == 2 and len(got_b) == 1)
    assert sorted(p["payload"]["x"] for p in got_a) == [1, 2]
    assert got_b[0]["payload"] == {"x": 1} and got_b[0]["event"] == "cursor"
    await b.close()
    await eventually(lambda: syncs and "bob" not in syncs[-1])
    await a.close()


async def test_postgres_changes_with_stream_filter(server: OnairServer) -> None:
    seller = server.token("seller-1", "seller")
    stream_x = server.create_live_stream(seller)
    stream_y = server.create_live_stream(seller)
    client = AsyncRealtimeClient(server.ws_url, seller, auto_reconnect=False)
    await client.connect()
    changes: list[Any] = []
    states: list[str] = []
    channel = client.channel(f"stream:{stream_x}")
    channel.on_postgres_changes("INSERT", lambda p: changes.append(p), table="stream_viewers", filter=f"stream_id=eq.{stream_x}")
    channel.on_broadcast("viewer_count", lambda p: states.append(p["payload"]["viewer_count"]))
    assert (await subscribed(channel))[0][0] == RealtimeSubscribeStates.SUBSCRIBED
    viewer = server.token("viewer-1")
    assert server.api("POST", f"/api/v1/streams/{stream_y}/viewers", viewer).status_code == 200
    assert server.api("POST", f"/api/v1/streams/{stream_x}/viewers", viewer).status_code == 200
    await eventually(lambda: changes and states)
    await asyncio.sleep(0.2)
    assert len(changes) == 1
    data = changes[0]["data"]
    assert data["type"] == "INSERT" and data["table"] == "stream_viewers"
    assert data["record"]["stream_id"] == stream_x and data["record"]["user_id"] == "viewer-1"
    assert states == [1]
    await client.close()


async def test_private_channel_denied_and_token_expiry(server: OnairServer) -> None:
    seller = server.token("seller-2", "seller")
    stream = server.create_live_stream(seller)
    stranger = AsyncRealtimeClient(server.ws_url, server.anon_key, auto_reconnect=False)
    await stranger.connect()
    private = stranger.channel(f"stream:{stream}", {"config": {"private": True}})
    states = await subscribed(private)
    assert states[0][0] == RealtimeSubscribeStates.CHANNEL_ERROR
    assert "Unauthorized" in str(states[0][1])
    await stranger.close()

    import time

    short = server.token("buyer-3", ttl=2)
    client = AsyncRealtimeClient(server.ws_url, server.anon_key, auto_reconnect=False)
    await client.connect()
    await client.set_auth(short)
    channel = client.channel(f"stream:{stream}")
    states = await subscribed(channel)
    assert states[0][0] == RealtimeSubscribeStates.SUBSCRIBED
    await client.set_auth(server.token("buyer-3", ttl=5))  # refresh: still subscribed afterwards
    await asyncio.sleep(2.5)  # past the first token's exp
    assert channel.is_joined
    deadline = time.monotonic() + 6
    while channel.is_joined and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert channel.is_closed  # system "Token has expired …" then phx_close
    assert RealtimeSubscribeStates.CLOSED in [state for state, _ in states]
    errors = [str(err) for state, err in states if state == RealtimeSubscribeStates.CHANNEL_ERROR]
    assert errors and "Token has expired" in errors[0]
    await client.close()


async def test_stream_end_closes_the_channel_without_an_error(server: OnairServer) -> None:
    """Issue 11 §5: after the final stream_state the server closes the stream's channel with a
    `system` status ok ("The stream has ended") and `phx_close`: the official client reports
    CLOSED — not CHANNEL_ERROR — and does not rejoin."""
    seller = server.token("seller-end", "seller")
    stream = server.create_live_stream(seller)
    client = AsyncRealtimeClient(server.ws_url, server.token("buyer-end"), auto_reconnect=False)
    await client.connect()
    channel = client.channel(f"stream:{stream}")
    ended: list[Any] = []
    system: list[Any] = []
    channel.on_broadcast("stream_state", lambda p: ended.append(p["payload"]["stream"]["status"]))
    channel.on_system(lambda p: system.append(p))
    states = await subscribed(channel)
    assert states[0][0] == RealtimeSubscribeStates.SUBSCRIBED
    assert server.api("POST", f"/api/v1/streams/{stream}/end", seller).status_code == 200
    await eventually(lambda: channel.is_closed, timeout=10)
    assert ended == ["ended"]  # the final state came first
    notices = [(getattr(p, "status", None), getattr(p, "message", None)) for p in system
               if getattr(p, "extension", None) == "system"]
    assert notices == [("ok", "The stream has ended")], system
    assert [state for state, _ in states[1:]] == [RealtimeSubscribeStates.CLOSED]
    await asyncio.sleep(2.5)  # no rejoin
    assert channel.is_closed
    await client.close()
