"""Issue 10 §7: a muted or banned user may not edit earlier messages (an edit is new text), on
SQLite and PostgreSQL; deleting one's own message stays allowed (it only takes text back)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import UserFactory


async def _live_stream(client: httpx.AsyncClient, seller: dict[str, str]) -> str:
    stream = (await client.post("/api/v1/streams", json={"title": "edits"}, headers=seller)).json()
    assert (await client.post(f"/api/v1/streams/{stream['id']}/start", headers=seller)).status_code == 200
    return str(stream["id"])


def _problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == type_
    return body


async def test_sanctioned_users_cannot_edit(app_client: httpx.AsyncClient, make_user: UserFactory) -> None:
    _, seller = make_user("seller")
    buyer_id, buyer = make_user("buyer")
    sid = await _live_stream(app_client, seller)
    chat, sanctions = f"/api/v1/streams/{sid}/chat", f"/api/v1/streams/{sid}/chat/sanctions"
    ids = []
    for n in range(2):
        sent = await app_client.post(chat, json={"body": f"message {n}", "client_msg_id": f"e{n}"}, headers=buyer)
        assert sent.status_code == 201, sent.text
        ids.append(sent.json()["id"])

    ban = await app_client.post(sanctions, json={"user_id": buyer_id, "kind": "ban"}, headers=seller)
    assert ban.status_code == 201
    _problem(await app_client.patch(f"{chat}/{ids[0]}", json={"body": "changed"}, headers=buyer), 403, "chat-banned")
    assert (await app_client.get(f"{chat}/{ids[0]}")).json()["body"] == "message 0"  # nothing changed

    await app_client.delete(f"{sanctions}/{buyer_id}", headers=seller)
    mute = {"user_id": buyer_id, "kind": "mute", "duration_seconds": 600}
    assert (await app_client.post(sanctions, json=mute, headers=seller)).status_code == 201
    _problem(await app_client.patch(f"{chat}/{ids[0]}", json={"body": "changed"}, headers=buyer), 403, "chat-muted")
    deleted = await app_client.delete(f"{chat}/{ids[1]}", headers=buyer)
    assert deleted.status_code == 200 and deleted.json()["deleted"]

    await app_client.delete(f"{sanctions}/{buyer_id}", headers=seller)
    edited = await app_client.patch(f"{chat}/{ids[0]}", json={"body": "changed"}, headers=buyer)
    assert edited.status_code == 200 and edited.json()["body"] == "changed"
