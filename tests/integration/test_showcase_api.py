"""The showcase over REST against the real app, on SQLite and PostgreSQL (issue 14).

Changes are versioned per stream and published as ``showcase`` broadcasts on the stream's topic
in version order; bad input is a 422 problem that changes nothing; ended streams refuse changes;
the pinned chat message follows edits and is unpinned when its message is deleted.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from onair.context import AppContext

API = "/api/v1"
PROBLEM = "application/problem+json"
MUG = {"title": "Red mug", "price_minor": 1299, "currency": "EUR",
       "product_url": "https://shop.example/mug", "image_url": "https://cdn.example/mug.jpg",
       "stock": 12}


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_message(self, topic: str, data: bytes) -> None:
        event = orjson.loads(data)
        if event.get("event") == "showcase":
            self.events.append(event["payload"])


def problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == type_
    return body


@pytest.fixture
async def live(app_client: httpx.AsyncClient, make_user: Any, ctx: AppContext) -> dict[str, Any]:
    seller, headers = make_user("seller")
    created = await app_client.post(f"{API}/streams", json={"title": "Drop"}, headers=headers)
    sid = created.json()["id"]
    await app_client.post(f"{API}/streams/{sid}/start", headers=headers)
    recorder = Recorder()
    ctx.broker_fan_in.consumers.append(recorder)
    await ctx.broker.subscribe(f"stream:{sid}")
    return {"sid": sid, "seller": headers, "seller_id": seller, "recorder": recorder,
            "base": f"{API}/streams/{sid}/showcase"}


async def test_showcase_lifecycle_versions_and_events(app_client, live, ctx) -> None:
    base, seller = live["base"], live["seller"]
    empty = await app_client.get(base)
    assert empty.status_code == 200 and empty.json()["version"] == 0 and empty.json()["products"] == []
    a = (await app_client.post(f"{base}/products", json=MUG, headers=seller)).json()
    pid = a["products"][0]["id"]
    b = (await app_client.post(f"{base}/products", json={**MUG, "title": "Blue mug"}, headers=seller)).json()
    pid2 = b["products"][1]["id"]
    for path, method, body in [
        (f"{base}/products/{pid}/pin", "POST", None),
        (f"{base}/products/{pid}/deal", "POST", {"deal_price_minor": 999, "duration_seconds": 120}),
        (f"{base}/products/{pid2}/move", "POST", {"position": 0}),
        (f"{base}/products/{pid2}/sold-out", "POST", {"sold_out": True}),
        (f"{base}/products/{pid}", "PATCH", {"stock": 3, "image_url": None}),
    ]:
        response = await app_client.request(method, path, json=body, headers=seller)
        assert response.status_code == 200, response.text
    got = (await app_client.get(base)).json()
    assert got["version"] == 7 and got["pinned_product_id"] == pid
    assert [p["id"] for p in got["products"]] == [pid2, pid]
    mug = got["products"][1]
    assert mug["deal_price_minor"] == 999 and mug["stock"] == 3 and mug["image_url"] is None
    assert got["products"][0]["sold_out"] is True and mug["currency_exponent"] == 2
    await ctx.chat.events_published()
    events = live["recorder"].events
    assert [e["version"] for e in events] == list(range(1, 8))
    assert events[-1]["product"]["stock"] == 3 and events[-1]["order"] == [pid2, pid]
    removed = (await app_client.delete(f"{base}/products/{pid}", headers=seller)).json()
    assert removed["pinned_product_id"] is None and removed["version"] == 8
    assert live["recorder"].events[-1]["removed"] == pid


@pytest.mark.parametrize(("change", "status", "type_"), [
    ({"price_minor": -1}, 422, "invalid-product"),
    ({"currency": "ABC"}, 422, "invalid-product"),
    ({"currency": "EURO"}, 422, "validation-error"),
    ({"product_url": "javascript:alert(1)"}, 422, "invalid-product"),
    ({"image_url": "http://x/" + "a" * 3000}, 422, "invalid-product"),
    ({"title": "x" * 5000}, 422, "validation-error"),
    ({"price_minor": "12"}, 422, "validation-error"),
    ({"price_minor": 12.5}, 422, "validation-error"),
    ({"seller_id": "me"}, 422, "validation-error"),
])
async def test_bad_input_is_a_clear_422_and_changes_nothing(app_client, live, change, status, type_) -> None:
    response = await app_client.post(f"{live['base']}/products", json={**MUG, **change},
                                     headers=live["seller"])
    problem(response, status, type_)
    assert (await app_client.get(live["base"])).json()["version"] == 0
    assert live["recorder"].events == []


async def test_who_may_change_it(app_client, live, make_user, ctx) -> None:
    base = live["base"]
    _, buyer = make_user("buyer")
    _, moderator = make_user("moderator")
    _, other_seller = make_user("seller")
    cohost_id, cohost = make_user("buyer")
    invited = await app_client.post(f"{API}/streams/{live['sid']}/cohosts",
                                    json={"user_id": cohost_id}, headers=live["seller"])
    assert invited.status_code == 201, invited.text
    problem(await app_client.post(f"{base}/products", json=MUG), 401, "unauthorized")
    for headers in (buyer, other_seller):
        problem(await app_client.post(f"{base}/products", json=MUG, headers=headers), 403,
                "not-showcase-editor")
    for headers in (moderator, cohost, live["seller"]):
        assert (await app_client.post(f"{base}/products", json=MUG, headers=headers)).status_code == 201
    pid = (await app_client.get(base, headers=buyer)).json()["products"][0]["id"]
    for path in (f"{base}/products/{pid}/pin", f"{base}/products/{pid}/deal"):
        problem(await app_client.post(path, json={"deal_price_minor": 1, "duration_seconds": 9},
                                      headers=buyer), 403, "not-showcase-editor")
    problem(await app_client.get(f"{API}/streams/0190a000-0000-7000-8000-000000000000/showcase"),
            404, "stream-not-found")
    problem(await app_client.post(f"{base}/products/nope/pin", headers=live["seller"]), 404,
            "product-not-found")


async def test_ended_stream_refuses_changes_with_409(app_client, live) -> None:
    created = await app_client.post(f"{live['base']}/products", json=MUG, headers=live["seller"])
    pid = created.json()["products"][0]["id"]
    await app_client.post(f"{API}/streams/{live['sid']}/end", headers=live["seller"])
    problem(await app_client.post(f"{live['base']}/products/{pid}/pin", headers=live["seller"]),
            409, "stream-ended")
    assert (await app_client.get(live["base"])).json()["version"] == 1  # still readable


async def test_pinned_message_follows_edits_and_deletes(app_client, live, make_user, ctx) -> None:
    sid, seller, base = live["sid"], live["seller"], live["base"]
    _, buyer = make_user("buyer")
    sent = await app_client.post(f"{API}/streams/{sid}/chat",
                                 json={"body": "Does it come in blue?", "client_msg_id": "q1"},
                                 headers=buyer)
    assert sent.status_code in (200, 201), sent.text
    mid = sent.json()["id"]
    problem(await app_client.put(f"{base}/pinned-message", json={"message_id": mid}, headers=buyer),
            403, "not-showcase-editor")
    pinned = await app_client.put(f"{base}/pinned-message", json={"message_id": mid}, headers=seller)
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["pinned_message"]["body"] == "Does it come in blue?"
    edited = await app_client.patch(f"{API}/streams/{sid}/chat/{mid}",
                                    json={"body": "Blue or green?"}, headers=buyer)
    assert edited.status_code == 200, edited.text
    assert (await app_client.get(base)).json()["pinned_message"]["body"] == "Blue or green?"
    deleted = await app_client.delete(f"{API}/streams/{sid}/chat/{mid}", headers=buyer)
    assert deleted.status_code in (200, 204), deleted.text
    after = (await app_client.get(base)).json()
    assert after["pinned_message"] is None
    await ctx.chat.events_published()
    assert all("Does it come" not in orjson.dumps(e).decode() for e in live["recorder"].events[-2:])
    problem(await app_client.put(f"{base}/pinned-message", json={"message_id": mid}, headers=seller),
            404, "message-not-found")


async def test_chat_retention_takes_the_pinned_copy_with_the_chat(app_client, live, make_user,
                                                                   ctx, clock) -> None:
    """A purged chat leaves no body behind in the showcase's pinned-message copy."""
    from onair.store import retention as retention_store

    sid, seller, base = live["sid"], live["seller"], live["base"]
    _, buyer = make_user("buyer")
    mid = (await app_client.post(f"{API}/streams/{sid}/chat", headers=buyer,
                                 json={"body": "Pin me", "client_msg_id": "r1"})).json()["id"]
    assert (await app_client.put(f"{base}/pinned-message", json={"message_id": mid},
                                 headers=seller)).status_code == 200
    await app_client.post(f"{API}/streams/{sid}/end", headers=seller)
    async with ctx.db.write() as conn:
        await retention_store.mark_chat_purged(conn, sid, clock.now())
    after = (await app_client.get(base)).json()
    assert after["pinned_message"] is None and after["version"] == 2


async def test_concurrent_editors_get_gapless_versions(app_client, live, make_user, ctx) -> None:
    """Several editors at once: every change is kept, versions are 1..n without gaps or repeats
    (the stream's row lock serializes them on PostgreSQL; SQLite has one writer)."""
    import asyncio

    _, moderator = make_user("moderator")
    editors = [live["seller"], moderator]
    responses = await asyncio.gather(*(
        app_client.post(f"{live['base']}/products", json={**MUG, "title": f"Item {i}"},
                        headers=editors[i % 2]) for i in range(12)))
    assert [r.status_code for r in responses] == [201] * 12
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 13))
    final = (await app_client.get(live["base"])).json()
    assert final["version"] == 12 and len(final["products"]) == 12
    await ctx.chat.events_published()
    assert sorted(e["version"] for e in live["recorder"].events) == list(range(1, 13))
