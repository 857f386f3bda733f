"""The chat send served by HotRoutes answers exactly as the FastAPI route it stands in for.

Two apps share one running context: the production app (sends go through ``HotRoutes``) and one
built with ``hot_routes=False`` (sends go through FastAPI's router, dependency solver and
exception handlers). Every case is sent to both; status, content type, headers (but the request
id) and body must be byte-identical — for successes this works because the second send of the
same client_msg_id returns the stored original.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from onair.context import AppContext
from onair.domain.streams import Action
from onair.logs import add_request_id
from tests.apps import comparable, hot_and_plain_clients

SEND = "/api/v1/streams/{}/chat"


@pytest.fixture
async def both_clients(
    chat_ctx: AppContext,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with hot_and_plain_clients(chat_ctx) as clients:
        yield clients


@pytest.fixture
async def live(chat_stream: Any, chat_user: Any) -> tuple[str, dict[str, str]]:
    """A live stream and a buyer's headers."""
    stream_id, _, _ = await chat_stream()
    _, buyer = chat_user("buyer")
    return stream_id, buyer


async def post_both(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], path: str, **kwargs: Any
) -> tuple[httpx.Response, httpx.Response]:
    hot, plain = clients
    return await hot.post(path, **kwargs), await plain.post(path, **kwargs)


async def test_sends_and_retries_answer_the_same(
    both_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], live: tuple[str, dict[str, str]],
) -> None:
    stream_id, buyer = live
    hot, plain = both_clients
    for first, second in ((hot, plain), (plain, hot)):
        payload = {"body": " <b>cafe\u0301</b>\t ", "client_msg_id": str(uuid.uuid4()),
                   "client_sent_at": "2026-11-24T10:00:00+01:00"}
        created = await first.post(SEND.format(stream_id), json=payload, headers=buyer)
        retried = await second.post(SEND.format(stream_id), json=payload, headers=buyer)
        assert created.status_code == 201 and retried.status_code == 200
        assert comparable(created)[1:] == comparable(retried)[1:]
        assert created.headers["location"].endswith(created.json()["id"])
        assert created.headers["x-request-id"] and retried.headers["x-request-id"]
        reused = {**payload, "body": "something else"}
        refused = [await client.post(SEND.format(stream_id), json=reused, headers=buyer)
                   for client in (first, second)]
        assert comparable(refused[0]) == comparable(refused[1])
        assert refused[0].status_code == 409


CASES: list[tuple[str, Callable[[dict[str, str]], dict[str, Any]]]] = [
    ("invalid json", lambda h: {"content": b"{", "headers": h}),
    ("empty body", lambda h: {"content": b"", "headers": h}),
    ("not utf-8", lambda h: {"content": b'{"body":"\xff","client_msg_id":"a"}',
                                   "headers": h}),
    ("missing client_msg_id", lambda h: {"json": {"body": "hi"}, "headers": h}),
    ("extra field", lambda h: {"json": {"body": "hi", "client_msg_id": "a", "x": 1},
                                     "headers": h}),
    ("body not a string", lambda h: {"json": {"body": 5, "client_msg_id": "a"},
                                           "headers": h}),
    ("bad client_msg_id", lambda h: {"json": {"body": "hi", "client_msg_id": "a b"},
                                           "headers": h}),
    ("naive client_sent_at", lambda h: {
        "json": {"body": "hi", "client_msg_id": "a", "client_sent_at": "2026-11-24T10:00:00"},
        "headers": h}),
    ("whitespace body", lambda h: {"json": {"body": " \n\t ", "client_msg_id": "a"},
                                         "headers": h}),
    ("too long", lambda h: {"json": {"body": "x" * 501, "client_msg_id": "a"},
                                  "headers": h}),
    ("no credentials", lambda h: {"json": {"body": "hi", "client_msg_id": "a"}}),
    ("basic auth", lambda h: {"json": {"body": "hi", "client_msg_id": "a"},
                                    "headers": {"Authorization": "Basic dTpw"}}),
    ("garbage token", lambda h: {"json": {"body": "hi", "client_msg_id": "a"},
                                       "headers": {"Authorization": "Bearer a.b.c"}}),
    ("oversized (declared)", lambda h: {"content": b"x" * 70_000, "headers": h}),
    # Bad bytes (issue 10): refused by the shared text rule, identically on both paths.
    ("nul in body", lambda h: {"json": {"body": "a\u0000b", "client_msg_id": "a"}, "headers": h}),
    ("bidi override", lambda h: {"json": {"body": "\u202egnp.exe", "client_msg_id": "a"},
                                 "headers": h}),
    ("invisible only", lambda h: {"json": {"body": "\u200b\u2800", "client_msg_id": "a"},
                                  "headers": h}),
    ("surrogate", lambda h: {"content": b'{"body":"a\\ud800","client_msg_id":"a"}', "headers": h}),
    ("nul in client_msg_id", lambda h: {"json": {"body": "hi", "client_msg_id": "a\u0000"},
                                        "headers": h}),
    ("oversized (chunked)", lambda h: {"content": chunks(b"x" * 70_000), "headers": h}),
]


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 16_384):
        yield data[start:start + 16_384]


@pytest.mark.parametrize(("name", "make"), CASES, ids=[name for name, _ in CASES])
async def test_refusals_answer_the_same(
    both_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], chat_ctx: AppContext,
    live: tuple[str, dict[str, str]], name: str, make: Callable[[dict[str, str]], dict[str, Any]],
) -> None:
    stream_id, buyer = live
    hot, plain = both_clients
    results = []
    for client in (hot, plain):
        # A fresh request per client: an async body can be read only once.
        response = await client.post(SEND.format(stream_id), **make(buyer))
        results.append(comparable(response))
    assert results[0] == results[1]
    status, headers, _ = results[0]
    assert 400 <= status < 500 and headers["content-type"] == "application/problem+json", name
    assert (await chat_ctx.chat.page(stream_id, before_seq=None, after_seq=None,
                                     limit=None)).messages == []


@pytest.mark.parametrize("target", ["unknown", "not-a-uuid", "ended", "malformed", "nul", "bidi"])
async def test_stream_refusals_answer_the_same(
    both_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], chat_ctx: AppContext,
    chat_stream: Any, chat_user: Any, target: str,
) -> None:
    _, buyer = chat_user("buyer")
    stream_id, seller, _ = await chat_stream()
    await chat_ctx.streams.act(seller, stream_id, Action.END)
    path_id = {"unknown": str(uuid.uuid4()), "not-a-uuid": "not-a-uuid", "ended": stream_id,
               "malformed": "1 OR 1=1", "nul": "a%00b", "bidi": "%E2%80%AEx"}[target]
    hot, plain = await post_both(both_clients, SEND.format(path_id),
                                 json={"body": "hi", "client_msg_id": "a"}, headers=buyer)
    assert comparable(hot) == comparable(plain)
    assert hot.status_code in (404, 409, 422)
    if target in ("malformed", "nul", "bidi"):  # the shared id rule: a clean 422, no lookup
        assert hot.status_code == 422 and hot.json()["errors"][0]["loc"] == ["path", "stream_id"]


async def test_other_methods_and_paths_are_left_to_the_router(
    both_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], live: tuple[str, dict[str, str]],
) -> None:
    stream_id, buyer = live
    hot, plain = both_clients
    for method, path in [("GET", SEND.format(stream_id)), ("PUT", SEND.format(stream_id)),
                         ("POST", SEND.format(stream_id) + "/"),
                         ("POST", f"/api/v1/streams/{stream_id}/chatx")]:
        a = await hot.request(method, path, headers=buyer, json={"body": "hi",
                                                                 "client_msg_id": "a"})
        b = await plain.request(method, path, headers=buyer, json={"body": "hi",
                                                                   "client_msg_id": "a"})
        assert comparable(a) == comparable(b), (method, path)


async def test_an_unexpected_failure_is_a_generic_500_with_the_request_id_logged(
    both_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], chat_ctx: AppContext,
    live: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream_id, buyer = live

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(chat_ctx.chat, "send", broken)
    with capture_logs(processors=[add_request_id]) as logs:
        hot, plain = await post_both(both_clients, SEND.format(stream_id),
                                     json={"body": "hi", "client_msg_id": "a"},
                                     headers={**buyer, "x-request-id": "req-42"})
    assert comparable(hot) == comparable(plain)
    assert hot.status_code == 500 and b"secret internals" not in hot.content
    assert hot.headers["x-request-id"] == plain.headers["x-request-id"] == "req-42"
    errors = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert len(errors) == 2 and all(entry["request_id"] == "req-42" for entry in errors)
    assert all(entry["exc_info"].args == ("secret internals",) for entry in errors)


async def test_hot_sends_are_counted_under_their_route_template(
    both_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], live: tuple[str, dict[str, str]],
) -> None:
    stream_id, buyer = live
    hot, _ = both_clients
    response = await hot.post(SEND.format(stream_id), json={"body": "hi", "client_msg_id": "m"},
                              headers=buyer)
    assert response.status_code == 201
    metrics = (await hot.get("/metrics")).text
    assert ('onair_http_requests_total{method="POST",route="/api/v1/streams/{stream_id}/chat",'
            'status="201"}') in metrics
