"""Joins and the Redis link, with a real Redis (a private ``redis-server`` on a free port: never
the machine's): a join is confirmed only once the node can receive, and a lost link is told to
the joined channels in-band, then its recovery (issue 12 §1)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from onair.realtime.node import LIVE_DELIVERY_LOST, LIVE_DELIVERY_RESTORED
from onair.realtime.protocol.serializer import V2Serializer
from onair.realtime.service import RealtimeService
from tests.integration.test_redis_broker import (
    PrivateRedis,
    _skip_or_fail,
    eventually,
    fast_broker,
    free_port,
)
from tests.realtime.realtime_fakes import FakeTransport, token_verifier

pytestmark = pytest.mark.redis
ROOM = "realtime:room"


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    """A private redis-server on a free port, started and stopped by the test itself."""
    if shutil.which("redis-server") is None:
        _skip_or_fail("redis-server is not installed (needed for a private Redis to stop)")
    server = PrivateRedis(free_port())
    try:
        yield server
    finally:
        server.stop()


def attach(service: RealtimeService) -> tuple[Any, FakeTransport]:
    transport = FakeTransport()
    client = service.attach(transport, V2Serializer(), token_verifier()("u:buyer"), lambda code, reason: None)
    transport.client = client
    return client, transport


async def join(service: RealtimeService, client: Any, transport: FakeTransport, ref: str) -> dict[str, Any]:
    pending = service.receive(client, orjson.dumps([ref, ref, ROOM, "phx_join", {"config": {}}]), False)
    if pending is not None:
        await pending
    reply = next(x for x in transport.take() if x[3] == "phx_reply" and x[1] == ref)
    return dict(reply[4])


async def wait_for(transport: FakeTransport, want: Any, timeout: float) -> list[Any]:
    """Messages up to the first one ``want`` accepts (fails after ``timeout`` seconds)."""
    seen: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            for message in transport.take():
                seen.append(message)
                if want(message):
                    return seen
            await asyncio.sleep(0.01)


def system(status: str, text: str) -> Any:
    return lambda x: x[3] == "system" and x[4] == {"extension": "system", "status": status, "message": text,
                                                     "channel": "room"}


async def relay_from_another_node(url: str, n: int) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        envelope = {"kind": "broadcast", "origin": "other-node", "event": "m", "payload": {"n": n}, "raw": None}
        await client.publish(f"t:{ROOM}", orjson.dumps(envelope))
    finally:
        await client.aclose()


async def started(url: str) -> tuple[RealtimeService, Any]:
    broker = fast_broker(url)
    service = RealtimeService(token_verifier(), broker, distributed=True, join_subscribe_timeout=2.0)
    await broker.start(service)
    await service.start()
    return service, broker


async def test_a_join_is_refused_while_redis_is_unreachable_then_confirmed_and_receiving(
        redis_server: PrivateRedis) -> None:
    service, broker = await started(redis_server.url)  # nothing listens on the port yet
    try:
        client, transport = attach(service)
        reply = await join(service, client, transport, "1")
        assert reply["status"] == "error", reply
        assert reply["response"]["reason"].startswith("BrokerUnavailable: ")
        assert service.hub.member(client, ROOM) is None and not service.hub.broker_refs

        redis_server.start()
        await redis_server.wait_ready()
        await eventually(lambda: _is(broker.available), "the broker connected")
        reply = await join(service, client, transport, "2")  # the client's retry
        assert reply["status"] == "ok", reply
        await relay_from_another_node(redis_server.url, 1)  # right after join_ok: must arrive
        got = await wait_for(transport, lambda x: x[3] == "broadcast", 5.0)
        assert got[-1][4]["payload"] == {"n": 1}
    finally:
        await service.stop()
        await broker.close()


async def test_link_loss_and_recovery_reach_the_joined_channels_in_band(redis_server: PrivateRedis) -> None:
    redis_server.start()
    await redis_server.wait_ready()
    service, broker = await started(redis_server.url)
    try:
        members = [attach(service) for _ in range(3)]
        for client, transport in members:
            assert (await join(service, client, transport, "1"))["status"] == "ok"
        admin = aioredis.Redis.from_url(redis_server.url)
        try:
            lost_at = time.monotonic()
            await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # the node's subscribe link
        finally:
            await admin.aclose()
        for _, transport in members:
            await wait_for(transport, system("error", LIVE_DELIVERY_LOST), 1.5)
        assert time.monotonic() - lost_at < 1.5
        for _, transport in members:
            await wait_for(transport, system("ok", LIVE_DELIVERY_RESTORED), 5.0)
        await relay_from_another_node(redis_server.url, 2)  # subscribed again once told "ok"
        for _, transport in members:
            got = await wait_for(transport, lambda x: x[3] == "broadcast", 5.0)
            assert got[-1][4]["payload"] == {"n": 2}

        redis_server.stop()  # a real outage: the server goes away
        for _, transport in members:
            await wait_for(transport, system("error", LIVE_DELIVERY_LOST), 1.5)
        late, late_t = attach(service)
        assert (await join(service, late, late_t, "1"))["status"] == "error"
        redis_server.start()
        for _, transport in members:
            await wait_for(transport, system("ok", LIVE_DELIVERY_RESTORED), 10.0)
        assert (await join(service, late, late_t, "2"))["status"] == "ok"
    finally:
        await service.stop()
        await broker.close()


async def _is(value: bool) -> bool:
    return value
