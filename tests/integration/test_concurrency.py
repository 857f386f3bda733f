"""Concurrent requests on one stream, over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random

from onair.domain.streams import TRANSITIONS, Status
from onair.store.streams import count_present, get_stream, transitions_of

API = "/api/v1"


async def test_50_concurrent_transitions_stay_consistent(app_client, make_user, ctx) -> None:
    _, seller = make_user("seller")
    sid = (await app_client.post(f"{API}/streams", json={"title": "race"}, headers=seller)).json()["id"]
    await app_client.post(f"{API}/streams/{sid}/start", headers=seller)
    rng = random.Random(5)
    actions = [rng.choice(["pause", "resume", "pause", "resume", "end"]) for _ in range(50)]
    responses = await asyncio.gather(*[
        app_client.post(f"{API}/streams/{sid}/{action}", headers=seller) for action in actions])
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, statuses
    ok = sum(1 for s in statuses if s == 200)
    async with ctx.db.read() as conn:
        stream = await get_stream(conn, sid)
        history = await transitions_of(conn, sid)
    assert stream is not None
    assert stream.version == 2 + ok  # created (1), started (2), then one per accepted move
    previous = Status.SCHEDULED
    for version, step in enumerate(history, start=2):
        assert step.version == version and step.from_status == previous
        assert Status(step.to_status) in TRANSITIONS[previous].values()
        previous = Status(step.to_status)
    assert previous is stream.status
    for response in responses:
        if response.status_code == 409:
            assert response.json()["type"] in ("illegal-transition", "concurrent-update")


async def test_500_concurrent_joins_and_leaves_give_exact_count(app_client, make_user, ctx) -> None:
    _, seller = make_user("seller")
    sid = (await app_client.post(f"{API}/streams", json={"title": "crowd"}, headers=seller)).json()["id"]
    await app_client.post(f"{API}/streams/{sid}/start", headers=seller)
    users = [make_user("buyer")[1] for _ in range(250)]
    rng = random.Random(7)
    leavers = set(rng.sample(range(250), 100))

    async def visit(i: int) -> None:
        joined = await app_client.post(f"{API}/streams/{sid}/viewers", headers=users[i])
        assert joined.status_code == 200, joined.text
        if i in leavers:
            left = await app_client.delete(f"{API}/streams/{sid}/viewers/me", headers=users[i])
            assert left.status_code == 200, left.text

    await asyncio.gather(*[visit(i) for i in range(250)])  # 250 joins + 100 leaves (+ 150 stays)
    # a second wave: everyone joins again from another tab, concurrently
    await asyncio.gather(*[app_client.post(f"{API}/streams/{sid}/viewers", headers=users[i])
                           for i in range(250)])
    stream = (await app_client.get(f"{API}/streams/{sid}")).json()
    async with ctx.db.read() as conn:
        present = await count_present(conn, sid)
    assert present == 250
    assert stream["viewer_count"] == 250
    assert 150 <= stream["peak_viewers"] <= 250
    assert stream["peak_viewers"] == 250
