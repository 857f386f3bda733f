"""Chat REST against the real app and database (SQLite and PostgreSQL): the happy paths, the
refusals and bad input. Every refusal is problem+json with a stable type and changes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.domain.streams import Action

PROBLEM = "application/problem+json"


def cmid() -> str:
    return str(uuid.uuid4())


async def send(client: httpx.AsyncClient, stream_id: str, headers: dict[str, str], body: Any,
               client_msg_id: str | None = None) -> httpx.Response:
    payload = {"body": body, "client_msg_id": client_msg_id or cmid()}
    return await client.post(f"/api/v1/streams/{stream_id}/chat", json=payload, headers=headers)


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["type"] == type_ and body["status"] == status and body["title"]
    return body


async def history(client: httpx.AsyncClient, stream_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v1/streams/{stream_id}/chat", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_send_assigns_seq_and_retry_returns_the_original(
    chat_client: httpx.AsyncClient, chat_stream: Any, chat_user: Any
) -> None:
    stream_id, _, _ = await chat_stream()
    _, buyer = chat_user("buyer")
    first = await send(chat_client, stream_id, buyer, "  hello\r\nworld  ", "m-1")
    assert first.status_code == 201, first.text
    message = first.json()
    assert message["seq"] == 1 and message["body"] == "hello\nworld" and not message["deleted"]
    assert first.headers["location"].endswith(message["id"])
    again = await send(chat_client, stream_id, buyer, "hello\nworld", "m-1")
    assert again.status_code == 200 and again.json() == message
    conflict = await send(chat_client, stream_id, buyer, "something else", "m-1")
    assert_problem(conflict, 409, "client-msg-id-reused")
    second = await send(chat_client, stream_id, buyer, "two")
    assert second.status_code == 201 and second.json()["seq"] == 2
    page = await history(chat_client, stream_id)
    assert [m["seq"] for m in page["messages"]] == [2, 1] and page["last_seq"] == 2


async def test_retry_after_edit_and_delete_still_returns_the_original(
    chat_client: httpx.AsyncClient, chat_stream: Any, chat_user: Any
) -> None:
    stream_id, _, seller_headers = await chat_stream()
    _, buyer = chat_user("buyer")
    sent = (await send(chat_client, stream_id, buyer, "typo", "k")).json()
    url = f"/api/v1/streams/{stream_id}/chat/{sent['id']}"
    edited = await chat_client.patch(url, json={"body": "fixed"}, headers=buyer)
    assert edited.status_code == 200 and edited.json()["body"] == "fixed"
    retry = await send(chat_client, stream_id, buyer, "typo", "k")
    assert retry.status_code == 200 and retry.json()["id"] == sent["id"]
    assert retry.json()["body"] == "fixed"
    deleted = await chat_client.delete(url, headers=seller_headers)
    assert deleted.status_code == 200
    tombstone = deleted.json()
    assert tombstone["deleted"] and tombstone["body"] is None and tombstone["seq"] == sent["seq"]
    retry = await send(chat_client, stream_id, buyer, "typo", "k")
    assert retry.status_code == 200 and retry.json()["deleted"]
    assert_problem(await send(chat_client, stream_id, buyer, "other", "k"), 409,
                   "client-msg-id-reused")


async def test_html_and_sql_looking_text_is_stored_verbatim(
    chat_client: httpx.AsyncClient, chat_stream: Any, chat_user: Any
) -> None:
    stream_id, _, _ = await chat_stream()
    _, buyer = chat_user("buyer")
    texts = ["<script>alert('x')</script>", "'; DROP TABLE chat_messages; --",
             "Robert'); DELETE FROM stream_sessions WHERE ('1'='1", "<img src=x onerror=alert(1)>",
             "%s %(x)s {0} \\x00 $1 ?", "🛍️ ½ price — ünïcödé"]
    for text in texts:
        response = await send(chat_client, stream_id, buyer, text)
        assert response.status_code == 201 and response.json()["body"] == text
    page = await history(chat_client, stream_id, after_seq=0)
    assert [m["body"] for m in page["messages"]] == texts


@pytest.mark.parametrize(
    ("payload", "status", "type_"),
    [
        ({"body": "", "client_msg_id": "a"}, 422, "body-empty"),
        ({"body": " \n\t\u3000 ", "client_msg_id": "a"}, 422, "body-empty"),
        ({"body": "x" * 501, "client_msg_id": "a"}, 422, "body-too-long"),
        ({"body": "ab\ud800", "client_msg_id": "a"}, 422, "validation-error"),  # not UTF-8
        ({"body": "hi"}, 422, "validation-error"),
        ({"body": "hi", "client_msg_id": ""}, 422, "validation-error"),
        ({"body": "hi", "client_msg_id": "x" * 65}, 422, "validation-error"),
        ({"body": "hi", "client_msg_id": "has space"}, 422, "validation-error"),
        ({"body": 5, "client_msg_id": "a"}, 422, "validation-error"),
        ({"body": None, "client_msg_id": "a"}, 422, "validation-error"),
        ({"client_msg_id": "a"}, 422, "validation-error"),
        ({"body": "hi", "client_msg_id": "a", "client_sent_at": "2026-01-01T00:00:00"}, 422,
         "validation-error"),
        ({"body": "hi", "client_msg_id": "a", "seq": 99}, 422, "validation-error"),
    ],
)
async def test_bad_send_input_is_refused_and_changes_nothing(
    chat_client: httpx.AsyncClient, chat_stream: Any, chat_user: Any,
    payload: dict[str, Any], status: int, type_: str,
) -> None:
    stream_id, _, _ = await chat_stream()
    _, buyer = chat_user("buyer")
    content = json.dumps(payload)  # json.dumps keeps a lone surrogate as \ud800
    response = await chat_client.post(
        f"/api/v1/streams/{stream_id}/chat", content=content,
        headers={**buyer, "content-type": "application/json"},
    )
    assert_problem(response, status, type_)
    assert (await history(chat_client, stream_id))["messages"] == []


@pytest.mark.parametrize(
    ("raw", "status", "type_"),
    [
        (b'{"body": "\xff\xfe", "client_msg_id": "a"}', 422, "validation-error"),  # not UTF-8
        (b'{"body": "caf\xe9", "client_msg_id": "a"}', 422, "validation-error"),  # Latin-1
        (b"not json", 422, "validation-error"),
        (b'{"body": "hi", ', 422, "validation-error"),
        (b"", 422, "validation-error"),
        (b"[]", 422, "validation-error"),
        (b'"just a string"', 422, "validation-error"),
    ],
)
async def test_malformed_request_bodies(
    chat_client: httpx.AsyncClient, chat_stream: Any, chat_user: Any, raw: bytes, status: int,
    type_: str,
) -> None:
    stream_id, _, _ = await chat_stream()
    _, buyer = chat_user("buyer")
    response = await chat_client.post(
        f"/api/v1/streams/{stream_id}/chat", content=raw,
        headers={**buyer, "content-type": "application/json"},
    )
    assert_problem(response, status, type_)
    assert (await history(chat_client, stream_id))["messages"] == []


async def test_unknown_and_ended_streams(
    chat_client: httpx.AsyncClient, chat_ctx: AppContext, chat_stream: Any, chat_user: Any
) -> None:
    _, buyer = chat_user("buyer")
    for unknown in [str(uuid.uuid4()), "not-a-uuid", "1 OR 1=1"]:
        # An id with whitespace is malformed (the shared text rule): 422 before any lookup.
        status, type_ = (422, "validation-error") if " " in unknown else (404, "stream-not-found")
        assert_problem(await send(chat_client, unknown, buyer, "hi"), status, type_)
        response = await chat_client.get(f"/api/v1/streams/{unknown}/chat")
        assert_problem(response, status, type_)
    stream_id, seller, _ = await chat_stream()
    sent = await send(chat_client, stream_id, buyer, "before the end", "last")
    await chat_ctx.streams.act(seller, stream_id, Action.PAUSE)
    assert (await send(chat_client, stream_id, buyer, "while paused")).status_code == 201
    await chat_ctx.streams.act(seller, stream_id, Action.END)
    body = assert_problem(await send(chat_client, stream_id, buyer, "after"), 409,
                          "stream-not-live")
    assert body["stream_status"] == "ended"
    # A retry of a message accepted before the end still gets its original answer.
    retry = await send(chat_client, stream_id, buyer, "before the end", "last")
    assert retry.status_code == 200 and retry.json()["id"] == sent.json()["id"]
    # History stays readable after the end.
    assert len((await history(chat_client, stream_id))["messages"]) == 2


async def test_scheduled_stream_refuses_chat(
    chat_client: httpx.AsyncClient, chat_ctx: AppContext, chat_user: Any
) -> None:
    seller, _ = chat_user("seller")
    _, buyer = chat_user("buyer")
    stream = await chat_ctx.streams.create(seller, "later")
    assert_problem(await send(chat_client, stream.id, buyer, "hi"), 409, "stream-not-live")


async def test_sending_needs_a_signed_in_user(
    chat_client: httpx.AsyncClient, chat_ctx: AppContext, chat_stream: Any
) -> None:
    stream_id, _, _ = await chat_stream()
    assert_problem(await send(chat_client, stream_id, {}, "hi"), 401, "unauthorized")
    anon = {"apikey": chat_ctx.anon_key}
    assert_problem(await send(chat_client, stream_id, anon, "hi"), 401, "unauthorized")
    bad = {"Authorization": "Bearer not.a.jwt"}
    assert_problem(await send(chat_client, stream_id, bad, "hi"), 401, "invalid-token")


async def test_edit_rules(
    chat_client: httpx.AsyncClient, chat_clock: FakeClock, chat_stream: Any, chat_user: Any
) -> None:
    stream_id, _, seller_headers = await chat_stream()
    buyer_principal, buyer = chat_user("buyer")
    _, other = chat_user("buyer")
    sent = (await send(chat_client, stream_id, buyer, "v1")).json()
    url = f"/api/v1/streams/{stream_id}/chat/{sent['id']}"
    assert_problem(await chat_client.patch(url, json={"body": "x"}, headers=other), 403,
                   "not-message-sender")
    assert_problem(await chat_client.patch(url, json={"body": "x"}, headers=seller_headers), 403,
                   "not-message-sender")
    assert_problem(await chat_client.patch(url, json={"body": "  "}, headers=buyer), 422,
                   "body-empty")
    surrogate = await chat_client.patch(url, content='{"body": "a\\ud800"}',
                                        headers={**buyer, "content-type": "application/json"})
    assert_problem(surrogate, 422, "body-invalid-unicode")
    chat_clock.advance(60)
    edited = await chat_client.patch(url, json={"body": "v2"}, headers=buyer)
    assert edited.status_code == 200
    assert edited.json()["edited_by"] == buyer_principal.user_id and edited.json()["seq"] == 1
    chat_clock.advance(300)
    assert_problem(await chat_client.patch(url, json={"body": "v3"}, headers=buyer), 403,
                   "edit-window-closed")
    missing = f"/api/v1/streams/{stream_id}/chat/{uuid.uuid4()}"
    assert_problem(await chat_client.patch(missing, json={"body": "x"}, headers=buyer), 404,
                   "message-not-found")
    assert_problem(await chat_client.patch(f"/api/v1/streams/{stream_id}/chat/zzz",
                                           json={"body": "x"}, headers=buyer), 404,
                   "message-not-found")
    got = await chat_client.get(url)
    assert got.status_code == 200 and got.json()["body"] == "v2"


async def test_delete_rules_and_tombstones(
    chat_client: httpx.AsyncClient, chat_stream: Any, chat_user: Any
) -> None:
    stream_id, _, seller_headers = await chat_stream()
    _, buyer = chat_user("buyer")
    _, other = chat_user("buyer")
    _, moderator = chat_user("moderator")
    ids = [(await send(chat_client, stream_id, buyer, f"m{i}")).json()["id"] for i in range(3)]
    url = f"/api/v1/streams/{stream_id}/chat/"
    assert_problem(await chat_client.delete(url + ids[0], headers=other), 403,
                   "not-chat-moderator")
    assert (await chat_client.delete(url + ids[0], headers=buyer)).status_code == 200
    assert (await chat_client.delete(url + ids[1], headers=seller_headers)).status_code == 200
    response = await chat_client.delete(url + ids[2], headers=moderator)
    assert response.status_code == 200 and response.json()["deleted_by"].startswith("moderator")
    again = await chat_client.delete(url + ids[2], headers=seller_headers)
    assert again.status_code == 200 and again.json() == response.json()  # first delete stands
    assert_problem(await chat_client.patch(url + ids[0], json={"body": "x"}, headers=buyer), 409,
                   "message-deleted")
    page = await history(chat_client, stream_id, after_seq=0)
    assert [(m["seq"], m["deleted"], m["body"]) for m in page["messages"]] == [
        (1, True, None), (2, True, None), (3, True, None)
    ]


async def test_mute_ban_and_lift(
    chat_client: httpx.AsyncClient, chat_clock: FakeClock, chat_stream: Any, chat_user: Any
) -> None:
    stream_id, seller, seller_headers = await chat_stream()
    buyer_principal, buyer = chat_user("buyer")
    _, other = chat_user("buyer")
    sanctions = f"/api/v1/streams/{stream_id}/chat/sanctions"
    mute = {"user_id": buyer_principal.user_id, "kind": "mute", "duration_seconds": 60,
            "reason": "spam"}
    assert_problem(await chat_client.post(sanctions, json=mute, headers=other), 403,
                   "not-chat-moderator")
    created = await chat_client.post(sanctions, json=mute, headers=seller_headers)
    assert created.status_code == 201, created.text
    body = assert_problem(await send(chat_client, stream_id, buyer, "hi"), 403, "chat-muted")
    assert body["reason"] == "spam" and body["until"].startswith("2026-01-01T00:01:00")
    assert (await send(chat_client, stream_id, other, "not me")).status_code == 201
    chat_clock.advance(61)
    assert (await send(chat_client, stream_id, buyer, "back")).status_code == 201

    ban = {"user_id": buyer_principal.user_id, "kind": "ban", "reason": "abuse"}
    assert (await chat_client.post(sanctions, json=ban, headers=seller_headers)).status_code == 201
    body = assert_problem(await send(chat_client, stream_id, buyer, "hi"), 403, "chat-banned")
    assert body["until"] is None and body["reason"] == "abuse"
    listed = await chat_client.get(sanctions, headers=seller_headers)
    assert [s["kind"] for s in listed.json()] == ["ban"]
    lifted = await chat_client.delete(f"{sanctions}/{buyer_principal.user_id}",
                                      headers=seller_headers)
    assert lifted.json() == {"lifted": 1}
    assert (await send(chat_client, stream_id, buyer, "free")).status_code == 201

    no_duration = {"user_id": "u", "kind": "mute"}
    assert_problem(await chat_client.post(sanctions, json=no_duration, headers=seller_headers),
                   422, "mute-needs-duration")
    too_long = {"user_id": "u", "kind": "mute", "duration_seconds": 10**9}
    assert_problem(await chat_client.post(sanctions, json=too_long, headers=seller_headers),
                   422, "invalid-duration")
    seller_ban = {"user_id": seller.user_id, "kind": "ban"}
    assert_problem(await chat_client.post(sanctions, json=seller_ban, headers=seller_headers),
                   409, "cannot-sanction-seller")
    assert_problem(await chat_client.post(sanctions, json={"user_id": "u", "kind": "kick"},
                                          headers=seller_headers), 422, "validation-error")


async def test_slow_mode(
    chat_client: httpx.AsyncClient, chat_clock: FakeClock, chat_stream: Any, chat_user: Any
) -> None:
    stream_id, _, seller_headers = await chat_stream()
    _, buyer = chat_user("buyer")
    _, other = chat_user("buyer")
    url = f"/api/v1/streams/{stream_id}/chat/settings"
    assert_problem(await chat_client.put(url, json={"slow_mode_seconds": 30}, headers=buyer), 403,
                   "not-chat-moderator")
    assert_problem(await chat_client.put(url, json={"slow_mode_seconds": -1},
                                         headers=seller_headers), 422, "invalid-slow-mode")
    response = await chat_client.put(url, json={"slow_mode_seconds": 30}, headers=seller_headers)
    assert response.json() == {"stream_id": stream_id, "slow_mode_seconds": 30}
    assert (await chat_client.get(url)).json()["slow_mode_seconds"] == 30
    assert (await send(chat_client, stream_id, buyer, "one")).status_code == 201
    chat_clock.advance(10)
    refused = await send(chat_client, stream_id, buyer, "two")
    body = assert_problem(refused, 429, "slow-mode")
    assert refused.headers["retry-after"] == "20" and body["slow_mode_seconds"] == 30
    assert (await send(chat_client, stream_id, other, "someone else")).status_code == 201
    for _ in range(3):  # the seller is exempt
        assert (await send(chat_client, stream_id, seller_headers, "deal!")).status_code == 201
    chat_clock.advance(20)
    assert (await send(chat_client, stream_id, buyer, "two")).status_code == 201


async def test_rate_limit_gives_429_with_retry_after(
    chat_client: httpx.AsyncClient, chat_ctx: AppContext, chat_stream: Any, chat_user: Any,
    chat_clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from onair.broker.buckets import MemoryBuckets
    from onair.domain.chat import TokenBucket

    monkeypatch.setattr(chat_ctx.chat, "buckets", MemoryBuckets(TokenBucket(rate=0.5, burst=3),
                                                                max_tracked=100))
    stream_id, _, _ = await chat_stream()
    _, buyer = chat_user("buyer")
    for i in range(3):
        assert (await send(chat_client, stream_id, buyer, f"m{i}")).status_code == 201
    refused = await send(chat_client, stream_id, buyer, "too fast")
    assert_problem(refused, 429, "rate-limited")
    assert refused.headers["retry-after"] == "2"
    chat_clock.advance(2)
    assert (await send(chat_client, stream_id, buyer, "ok now")).status_code == 201
    assert (await history(chat_client, stream_id))["last_seq"] == 4


@pytest.mark.parametrize(
    ("params", "type_"),
    [
        ({"before_seq": 5, "after_seq": 1}, "conflicting-cursors"),
        ({"limit": 0}, "validation-error"),
        ({"limit": 1001}, "invalid-limit"),
        ({"before_seq": 0}, "validation-error"),
        ({"after_seq": -1}, "validation-error"),
        ({"after_seq": "abc"}, "validation-error"),
        ({"limit": "1; DROP TABLE x"}, "validation-error"),
    ],
)
async def test_bad_history_queries(
    chat_client: httpx.AsyncClient, chat_stream: Any, params: dict[str, Any], type_: str
) -> None:
    stream_id, _, _ = await chat_stream()
    response = await chat_client.get(f"/api/v1/streams/{stream_id}/chat", params=params)
    assert_problem(response, 422, type_)
