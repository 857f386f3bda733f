"""The realtime service and the broker link (issue 12 §1), without Redis: joins with the
in-memory broker stay instant, a lost link is told in-band and releases held chat rows at once.
The Redis side (real outages) is in test_broker_link_redis.py."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from onair.broker.memory import MemoryBroker
from onair.realtime.node import LIVE_DELIVERY_LOST, LIVE_DELIVERY_RESTORED
from onair.realtime.ordering import ChatOrder
from onair.realtime.protocol.serializer import V2Serializer
from onair.realtime.service import RealtimeService
from tests.realtime.realtime_fakes import FakeTransport, token_verifier
from tests.realtime.test_chat_order_service import STREAM, TOPIC, delivered, row, settle


def join_frame(topic: str = TOPIC, ref: str = "1") -> bytes:
    return orjson.dumps([ref, ref, topic, "phx_join", {"config": {"postgres_changes": [
        {"event": "*", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{STREAM}"}]}}])


def attach(service: RealtimeService) -> tuple[Any, FakeTransport]:
    transport = FakeTransport()
    client = service.attach(transport, V2Serializer(), token_verifier()("u:buyer"), lambda code, reason: None)
    transport.client = client
    return client, transport


def systems(messages: list[Any]) -> list[tuple[str, str]]:
    return [(x[4]["status"], x[4]["message"]) for x in messages if x[3] == "system" and x[4].get("extension") == "system"]


async def test_a_join_with_the_in_memory_broker_never_suspends() -> None:
    broker = MemoryBroker()
    service = RealtimeService(token_verifier(), broker)
    await broker.start(service)
    await service.start()
    try:
        client, transport = attach(service)
        join = service.receive(client, join_frame(), False)
        try:
            join.send(None)  # runs to the end in one step: no broker round trip to wait for
        except StopIteration:
            pass
        else:
            raise AssertionError("the join suspended")
        replies = [x for x in transport.take() if x[3] == "phx_reply"]
        assert replies and replies[0][4]["status"] == "ok"
        assert broker.topics == {f"stream:{STREAM}"}
    finally:
        await service.stop()


async def test_concurrent_joins_share_one_subscription_and_a_failed_join_releases_it() -> None:
    broker = MemoryBroker()
    service = RealtimeService(token_verifier(), broker, unsubscribe_delay=0.05)
    await broker.start(service)
    await service.start()
    try:
        (a, _), (b, _) = attach(service), attach(service)
        for client in (a, b):
            await service.receive(client, join_frame(), False)
        assert list(service.node._subscriptions) == [f"stream:{STREAM}"]
        service.hub.leave(a, TOPIC)
        service.hub.leave(b, TOPIC)
        await asyncio.sleep(0.15)
        assert broker.topics == frozenset() and not service.node._subscriptions
    finally:
        await service.stop()


async def test_link_loss_is_told_to_every_channel_and_recovery_too() -> None:
    broker = MemoryBroker()
    service = RealtimeService(token_verifier(), broker, distributed=True)
    await broker.start(service)
    await service.start()
    try:
        client, transport = attach(service)
        await service.receive(client, join_frame(), False)
        other, other_t = attach(service)
        await service.receive(other, orjson.dumps(["1", "1", "realtime:room", "phx_join", {"config": {}}]), False)
        await settle()
        transport.take(), other_t.take()
        service.on_link_down("connection reset")
        await settle()
        for t in (transport, other_t):
            assert systems(t.take()) == [("error", LIVE_DELIVERY_LOST)]
        # while the link is down a join is refused (it could not receive), not confirmed
        late, late_t = attach(service)
        await service.receive(late, orjson.dumps(["1", "1", "realtime:late", "phx_join", {"config": {}}]), False)
        reply = next(x for x in late_t.take() if x[3] == "phx_reply")
        assert reply[4]["status"] == "error"
        assert reply[4]["response"]["reason"].startswith("BrokerUnavailable: ")
        assert service.hub.member(late, "realtime:late") is None
        service.on_link_up()
        await settle()
        for t in (transport, other_t):
            assert systems(t.take()) == [("ok", LIVE_DELIVERY_RESTORED)]
        await service.receive(late, orjson.dumps(["2", "2", "realtime:late", "phx_join", {"config": {}}]), False)
        assert next(x for x in late_t.take() if x[3] == "phx_reply")[4]["status"] == "ok"
    finally:
        await service.stop()


async def test_held_chat_rows_go_out_at_link_loss_and_the_sequence_restarts() -> None:
    broker = MemoryBroker()
    service = RealtimeService(token_verifier(), broker, distributed=True, chat_reorder_wait=30)
    await broker.start(service)
    await service.start()
    try:
        client, transport = attach(service)
        await service.receive(client, join_frame(), False)
        await settle()
        transport.take()
        topic = f"stream:{STREAM}"
        service.on_message(topic, row(1))
        service.on_message(topic, row(3))  # 2 is missing: 3 is held (for up to 30 s)
        await settle()
        assert delivered(transport) == [("INSERT", 1)]
        service.on_link_down("connection reset")  # 2 will never come: 3 goes out now
        await settle()
        messages = transport.take()
        assert [(x[4]["data"]["type"], x[4]["data"]["record"]["seq"]) for x in messages if x[3] == "postgres_changes"] == [("INSERT", 3)]
        assert messages[-1][3] == "system"  # after the released rows
        service.on_link_up()
        service.on_message(topic, row(9))  # rows 4-8 were lost with the link: 9 is not held
        await settle()
        assert delivered(transport) == [("INSERT", 9)]
    finally:
        await service.stop()


def test_chat_order_reset_releases_everything_in_seq_order() -> None:
    order: ChatOrder[str] = ChatOrder(10)
    assert order.push("s", 1, True, "1", 0) == ["1"]
    assert order.push("s", 4, True, "4", 0) == []
    assert order.push("s", 3, False, "3u", 0) == []
    assert order.push("s", 3, True, "3", 0) == []
    assert order.reset() == ["3", "3u", "4"]
    assert order.holding() == 0 and order.next_deadline() is None
    assert order.push("s", 20, True, "20", 1) == ["20"]  # a fresh sequence


def test_the_web_client_knows_the_notices_by_the_servers_words() -> None:
    from pathlib import Path

    channel_js = (Path(__file__).resolve().parents[2] / "src/onair/web/static/client/channel.js").read_text()
    for text in (LIVE_DELIVERY_LOST, LIVE_DELIVERY_RESTORED):
        assert f'"{text}"' in channel_js
