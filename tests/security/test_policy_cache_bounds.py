"""Issue 10 §8 (the policy part): the realtime policy's facts are bounded. Random ``stream:`` topics
(REST broadcasts) cost one database read each and sit in a bounded negative cache; a real
stream's facts are pinned while a local member needs them and dropped when the last one leaves,
so the caches return to their baseline after churn (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from onair.realtime.protocol.serializer import SERIALIZERS
from onair.settings import Settings
from tests.conftest import UserFactory
from tests.realtime.realtime_fakes import FakeTransport

CACHE = 50


@pytest.fixture
def settings(backend: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, jwt_secret="test-secret-" + "x" * 40, reaper_interval=3600,
                    realtime_policy_cache_size=CACHE, realtime_policy_cache_ttl=60,
                    realtime_policy_missing_ttl=60, realtime_policy_refresh_interval=0.5,
                    realtime_sweep_interval=0.1, **backend)


async def test_random_topics_and_member_churn_leave_bounded_caches(
        ctx: Any, app_client: httpx.AsyncClient, make_user: UserFactory) -> None:
    service = ctx.realtime
    policy = service.authorizer
    reads = 0
    access = ctx.streams.access

    async def counted(stream_id: str) -> Any:
        nonlocal reads
        reads += 1
        return await access(stream_id)

    ctx.streams.access = counted
    _, seller = make_user("seller")
    _, buyer = make_user("buyer")
    baseline = policy.sizes()

    topics = [f"stream:{uuid.uuid4()}" for _ in range(10 * CACHE)]
    for i in range(0, len(topics), 100):
        batch = {"messages": [{"topic": t, "event": "x", "payload": {}} for t in topics[i:i + 100]]}
        assert (await app_client.post("/realtime/v1/api/broadcast", json=batch, headers=buyer)).status_code == 202
    assert reads == len(topics)
    sizes = policy.sizes()
    assert sizes["missing"] <= CACHE and sizes["recent"] == 0 and sizes["pinned"] == 0
    again = {"messages": [{"topic": t, "event": "x", "payload": {}} for t in topics[-CACHE:]] * 2}
    assert (await app_client.post("/realtime/v1/api/broadcast", json=again, headers=buyer)).status_code == 202
    assert reads == len(topics)  # known missing: no database read

    stream = (await app_client.post("/api/v1/streams", json={"title": "bounds"}, headers=seller)).json()
    for _ in range(5):
        one = {"messages": [{"topic": f"stream:{stream['id']}", "event": "x", "payload": {}}]}
        assert (await app_client.post("/realtime/v1/api/broadcast", json=one, headers=buyer)).status_code == 202
    assert reads == len(topics) + 1

    token = buyer["authorization"].split()[1]
    for _ in range(3):  # member churn: pinned while joined, gone when the last member left
        clients = []
        for n in range(4):
            client = service.attach(FakeTransport(), SERIALIZERS["2.0.0"], service.authenticate(token), lambda c, r: None)
            join = ["1", "1", f"realtime:stream:{stream['id']}", "phx_join", {"config": {}}]
            pending = service.receive(client, orjson.dumps(join), False)
            if pending is not None:
                await pending
            assert client.transport.messages()[0][4]["status"] == "ok"
            clients.append(client)
        assert policy.sizes()["pinned"] == 1
        for client in clients:
            service.detach(client)
        assert policy.sizes()["pinned"] == 0
    assert policy.sizes()["pinned"] == baseline["pinned"] and policy.sizes()["recent"] <= 1
    assert len(service.hub.topics) == 0


async def test_a_lost_event_is_corrected_by_the_periodic_refresh(
        ctx: Any, app_client: httpx.AsyncClient, make_user: UserFactory) -> None:
    """Events are best effort: a ban committed without its event still closes the channel once
    the pinned facts are read again (``realtime_policy_refresh_interval``)."""
    import asyncio
    from datetime import timedelta

    from sqlalchemy import insert

    from onair.store.tables import chat_sanctions

    service = ctx.realtime
    _, seller = make_user("seller")
    buyer_id, buyer = make_user("buyer")
    stream = (await app_client.post("/api/v1/streams", json={"title": "lost"}, headers=seller)).json()
    transport = FakeTransport()
    client = service.attach(transport, SERIALIZERS["2.0.0"], service.authenticate(buyer["authorization"].split()[1]),
                            lambda c, r: None)
    pending = service.receive(client, orjson.dumps(["1", "1", f"realtime:stream:{stream['id']}", "phx_join",
                                                    {"config": {}}]), False)
    if pending is not None:
        await pending
    assert transport.take()[0][4]["status"] == "ok"
    now = ctx.clock.now()
    async with ctx.db.write() as conn:  # committed, but its event never published
        await conn.execute(insert(chat_sanctions).values(
            id=str(uuid.uuid4()), stream_id=stream["id"], user_id=buyer_id, kind="ban", until=now + timedelta(hours=1),
            reason=None, created_by="seller", created_at=now, lifted_at=None))
    for _ in range(50):
        await asyncio.sleep(0.1)
        if any(m[3] == "phx_close" for m in transport.messages()):
            break
    assert [m[3] for m in transport.take()][-2:] == ["system", "phx_close"]
    service.detach(client)
