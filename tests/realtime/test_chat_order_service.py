"""With several processes (a Redis broker), a node delivers a stream's chat rows in seq order
even when the broker hands them over out of order; with one process nothing is held."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from onair.realtime.protocol.serializer import V2Serializer
from onair.realtime.service import RealtimeService
from tests.realtime.realtime_fakes import FakeTransport, token_verifier

STREAM = "s1"
TOPIC = f"realtime:stream:{STREAM}"


def row(seq: int, type_: str = "INSERT", body: str = "hi") -> bytes:
    record = {"id": f"m{seq}", "stream_id": STREAM, "seq": seq, "body": body}
    return orjson.dumps({"kind": "row", "table": "chat_messages", "type": type_,
                         "record": record, "old_record": None,
                         "commit_timestamp": "2026-11-24T00:00:00Z"})


async def subscriber(service: RealtimeService) -> FakeTransport:
    transport = FakeTransport()
    client = service.attach(transport, V2Serializer(), token_verifier()("u:buyer"),
                            lambda code, reason: None)
    transport.client = client
    join = ["1", "1", TOPIC, "phx_join", {"config": {"postgres_changes": [
        {"event": "*", "schema": "public", "table": "chat_messages",
         "filter": f"stream_id=eq.{STREAM}"}]}}]
    pending = service.receive(client, orjson.dumps(join), False)
    if pending is not None:
        await pending
    service.hub.send_protocol_output(client)
    await asyncio.sleep(0)
    transport.take()
    return transport


def delivered(transport: FakeTransport) -> list[tuple[str, int]]:
    out = []
    for message in transport.take():
        if message[3] == "postgres_changes":
            data: dict[str, Any] = message[4]["data"]
            out.append((data["type"], data["record"]["seq"]))
    return out


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_rows_from_two_processes_are_put_back_in_seq_order() -> None:
    service = RealtimeService(token_verifier(), distributed=True, chat_reorder_wait=0.2)
    await service.start()
    try:
        transport = await subscriber(service)
        topic = f"stream:{STREAM}"
        service.on_message(topic, row(1))
        for seq in (4, 5):  # process B's batch overtook process A's 2 and 3
            service.on_message(topic, row(seq))
        service.on_message(topic, row(4, "UPDATE", "edited"))
        await settle()
        assert delivered(transport) == [("INSERT", 1)]
        for seq in (2, 3):
            service.on_message(topic, row(seq))
        await settle()
        assert delivered(transport) == [("INSERT", 2), ("INSERT", 3), ("INSERT", 4),
                                        ("UPDATE", 4), ("INSERT", 5)]
        # A row that never comes: the rows behind it go out once the wait is over.
        service.on_message(topic, row(7))
        await settle()
        assert delivered(transport) == []
        await asyncio.sleep(0.3)
        assert delivered(transport) == [("INSERT", 7)]
    finally:
        await service.stop()


async def test_one_process_holds_nothing() -> None:
    service = RealtimeService(token_verifier(), distributed=False)
    await service.start()
    try:
        transport = await subscriber(service)
        for seq in (1, 3, 2):  # not something one process publishes, but it is not held
            service.on_message(f"stream:{STREAM}", row(seq))
        await settle()
        assert delivered(transport) == [("INSERT", 1), ("INSERT", 3), ("INSERT", 2)]
    finally:
        await service.stop()
