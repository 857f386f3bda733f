"""The RTC token requests served by HotRoutes answer as the FastAPI routes they stand in for.

Each case goes to the production app and to one built with ``hot_routes=False`` (same context,
same database). Refusals must be byte-identical; for issued tokens everything but the token's
random salt is (issued_at and friends come from the frozen test clock).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from onair.context import AppContext
from tests.apps import comparable, hot_and_plain_clients

# The token tests' settings fixture (Agora credentials, a high issuing limit) and helpers.
from tests.integration.test_tokens_api import API, live_stream, settings  # noqa: F401


@pytest.fixture
async def clients(ctx: AppContext) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with hot_and_plain_clients(ctx) as pair:
        yield pair


def without_salt(response: httpx.Response) -> tuple[int, dict[str, str], dict[str, Any]]:
    status, headers, content = comparable(response)
    body = orjson.loads(content)
    assert body["token"].startswith("007")
    body["token"] = "<salted>"
    headers.pop("content-length", None)  # the token's length may differ by a base64 digit
    return status, headers, body


@pytest.mark.parametrize("refresh", [False, True])
@pytest.mark.parametrize(("who", "body"), [
    ("seller", None), ("seller", b"null"), ("seller", b"{}"), ("seller", b" \n"),
    ("seller", b'{"role": "subscriber"}'), ("buyer", None), ("buyer", b'{"role":"subscriber"}'),
])
async def test_issued_tokens_answer_the_same(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], make_user: Any, who: str,
    body: bytes | None, refresh: bool,
) -> None:
    hot, plain = clients
    seller_h = make_user("seller")[1]
    headers = seller_h if who == "seller" else make_user("buyer")[1]
    sid = await live_stream(hot, seller_h)
    path = f"{API}/streams/{sid}/rtc-token" + ("/refresh" if refresh else "")
    kwargs: dict[str, Any] = {"headers": {**headers, "content-type": "application/json"}}
    if body is not None:
        kwargs["content"] = body
    if refresh:  # both refreshes then report the same previous token's role
        assert (await hot.post(f"{API}/streams/{sid}/rtc-token", **kwargs)).status_code == 200
    a, b = await hot.post(path, **kwargs), await plain.post(path, **kwargs)
    assert a.status_code == 200, a.text
    assert without_salt(a) == without_salt(b)


Case = Callable[[dict[str, str]], dict[str, Any]]
REFUSALS: list[tuple[str, str, Case]] = [
    ("publisher asked by a buyer", "live", lambda h: {"json": {"role": "publisher"}, "headers": h}),
    ("unknown role", "live", lambda h: {"json": {"role": "admin"}, "headers": h}),
    ("extra field", "live", lambda h: {"json": {"channel": "other"}, "headers": h}),
    ("invalid json", "live", lambda h: {"content": b"{role", "headers": h}),
    ("a list", "live", lambda h: {"content": b"[]", "headers": h}),
    ("not utf-8", "live", lambda h: {"content": b'{"role":"\xff"}', "headers": h}),
    ("no credentials", "live", lambda h: {}),
    ("anon is not a user", "anon", lambda h: {"headers": h}),
    ("garbage token", "live", lambda h: {"headers": {"Authorization": "Bearer x.y.z"}}),
    ("oversized", "live", lambda h: {"content": b"{" + b" " * 70_000 + b"}", "headers": h}),
    ("unknown stream", "unknown", lambda h: {"headers": h}),
    ("not a stream id", "not-a-uuid", lambda h: {"headers": h}),
    ("malformed stream id", "malformed", lambda h: {"headers": h}),
    ("nul in stream id", "nul", lambda h: {"headers": h}),
    ("bidi in stream id", "bidi", lambda h: {"headers": h}),
    ("nul in role", "live", lambda h: {"json": {"role": "publisher\u0000"}, "headers": h}),
    ("ended stream", "ended", lambda h: {"headers": h}),
]


@pytest.mark.parametrize("refresh", [False, True])
@pytest.mark.parametrize(("name", "target", "make"), REFUSALS,
                         ids=[name for name, _, _ in REFUSALS])
async def test_refusals_answer_the_same(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], ctx: AppContext, make_user: Any,
    name: str, target: str, make: Case, refresh: bool,
) -> None:
    hot, plain = clients
    seller_h = make_user("seller")[1]
    buyer_h = make_user("buyer")[1]
    sid = await live_stream(hot, seller_h)
    if target == "ended":
        assert (await hot.post(f"{API}/streams/{sid}/end", headers=seller_h)).status_code == 200
    path_id = {"unknown": str(uuid.uuid4()), "not-a-uuid": "nope", "malformed": "1 OR 1=1",
               "nul": "a%00b", "bidi": "%E2%80%AEx"}.get(target, sid)
    headers = {"apikey": ctx.anon_key} if target == "anon" else buyer_h
    path = f"{API}/streams/{path_id}/rtc-token" + ("/refresh" if refresh else "")
    results = [comparable(await client.post(path, **make(headers))) for client in (hot, plain)]
    assert results[0] == results[1], name
    status, response_headers, _ = results[0]
    assert 400 <= status < 500 and response_headers["content-type"] == "application/problem+json"
