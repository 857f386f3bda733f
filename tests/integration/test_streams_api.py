"""Streams over HTTP against the real app, on SQLite and PostgreSQL.

Every bad request must get a clear 4xx problem+json and leave the stream row as it was.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from onair.auth.jwt import mint_token
from onair.context import AppContext
from onair.store.streams import get_stream, transitions_of

API = "/api/v1"
PROBLEM = "application/problem+json"


async def create(client: httpx.AsyncClient, headers: dict[str, str], title: str = "Live drop") -> dict[str, Any]:
    response = await client.post(f"{API}/streams", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == type_ and body["status"] == status and body["title"]
    return body


async def row(ctx: AppContext, stream_id: str) -> Any:
    async with ctx.db.read() as conn:
        return await get_stream(conn, stream_id)


async def test_lifecycle_happy_path(app_client, make_user, ctx) -> None:
    seller, headers = make_user("seller")
    stream = await create(app_client, headers)
    assert stream["status"] == "scheduled" and stream["seller_id"] == seller
    assert stream["allowed_actions"] == ["start", "end"]
    sid = stream["id"]
    for action, status in [("start", "live"), ("pause", "paused"), ("resume", "live")]:
        response = await app_client.post(f"{API}/streams/{sid}/{action}", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    response = await app_client.post(f"{API}/streams/{sid}/end", json={"reason": "sold out"},
                                     headers=headers)
    assert response.json()["status"] == "ended"
    assert response.json()["end_reason"] == "sold out"
    got = (await app_client.get(f"{API}/streams/{sid}")).json()
    assert got["status"] == "ended" and got["version"] == 5 and got["allowed_actions"] == []
    async with ctx.db.read() as conn:
        history = await transitions_of(conn, sid)
    assert [(h.from_status, h.to_status) for h in history] == [
        ("scheduled", "live"), ("live", "paused"), ("paused", "live"), ("live", "ended")]


async def test_end_without_body_and_list_filters(app_client, make_user) -> None:
    seller, headers = make_user("seller")
    other, other_headers = make_user("seller")
    ids = [(await create(app_client, headers, f"s{i}"))["id"] for i in range(5)]
    await create(app_client, other_headers, "other")
    response = await app_client.post(f"{API}/streams/{ids[0]}/end", headers=headers)
    assert response.status_code == 200 and response.json()["end_reason"] == "ended_by_seller"

    page = (await app_client.get(f"{API}/streams", params={"seller_id": seller, "limit": 2})).json()
    assert [s["id"] for s in page["items"]] == ids[::-1][:2]
    seen = [s["id"] for s in page["items"]]
    while page["next_cursor"]:
        page = (await app_client.get(f"{API}/streams", params={
            "seller_id": seller, "limit": 2, "cursor": page["next_cursor"]})).json()
        seen += [s["id"] for s in page["items"]]
    assert seen == ids[::-1]
    ended = (await app_client.get(f"{API}/streams", params={"status": "ended"})).json()
    assert [s["id"] for s in ended["items"]] == [ids[0]]
    scheduled = (await app_client.get(f"{API}/streams", params={"status": "scheduled"})).json()
    assert len(scheduled["items"]) == 5


async def test_illegal_transition_names_state_and_moves(app_client, make_user, ctx) -> None:
    _, headers = make_user("seller")
    sid = (await create(app_client, headers))["id"]
    body = assert_problem(await app_client.post(f"{API}/streams/{sid}/resume", headers=headers),
                          409, "illegal-transition")
    assert body["current_status"] == "scheduled"
    assert body["allowed_actions"] == ["start", "end"]
    stream = await row(ctx, sid)
    assert stream.status == "scheduled" and stream.version == 1


async def test_only_owner_or_staff_may_move(app_client, make_user, ctx) -> None:
    _, seller = make_user("seller")
    _, buyer = make_user("buyer")
    _, other_seller = make_user("seller")
    _, moderator = make_user("moderator")
    sid = (await create(app_client, seller))["id"]
    for headers in (buyer, other_seller):
        assert_problem(await app_client.post(f"{API}/streams/{sid}/start", headers=headers),
                       403, "not-stream-owner")
    assert (await row(ctx, sid)).version == 1
    response = await app_client.post(f"{API}/streams/{sid}/start", headers=moderator)
    assert response.status_code == 200 and response.json()["status"] == "live"


async def test_buyers_and_anon_cannot_create(app_client, make_user) -> None:
    _, buyer = make_user("buyer")
    assert_problem(await app_client.post(f"{API}/streams", json={"title": "x"}, headers=buyer),
                   403, "not-a-seller")
    assert_problem(await app_client.post(f"{API}/streams", json={"title": "x"}), 401,
                   "unauthorized")
    page = (await app_client.get(f"{API}/streams")).json()
    assert page["items"] == []


@pytest.mark.parametrize("payload,content_type", [
    (b"{not json", "application/json"),
    (b'{"title": ""}', "application/json"),
    (b'{"title": "   "}', "application/json"),
    (b'{"title": 42}', "application/json"),
    (b'{"title": "ok", "extra": 1}', "application/json"),
    (b'["title"]', "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b'{"title": "' + b"x" * 600 + b'"}', "application/json"),
])
async def test_malformed_create_is_422(app_client, make_user, payload, content_type) -> None:
    seller, headers = make_user("seller")
    response = await app_client.post(f"{API}/streams", content=payload,
                                     headers={**headers, "content-type": content_type})
    assert_problem(response, 422, "validation-error")
    page = (await app_client.get(f"{API}/streams", params={"seller_id": seller})).json()
    assert page["items"] == []


async def test_oversized_body_is_413(app_client, make_user, ctx) -> None:
    _, headers = make_user("seller")
    huge = b'{"title": "' + b"x" * (ctx.settings.max_body_bytes + 10) + b'"}'
    response = await app_client.post(f"{API}/streams", content=huge,
                                     headers={**headers, "content-type": "application/json"})
    assert_problem(response, 413, "payload-too-large")


async def test_unknown_stream_is_404(app_client, make_user) -> None:
    _, headers = make_user("seller")
    for path in ("/streams/nope", "/streams/01a20b2e-1972-7edf-87a1-c3baf88a72e9"):
        assert_problem(await app_client.get(f"{API}{path}"), 404, "stream-not-found")
        assert_problem(await app_client.post(f"{API}{path}/start", headers=headers), 404,
                       "stream-not-found")
    # Whitespace (or a control) makes an id malformed: 422 naming the segment, no lookup.
    for path in ("/streams/'; drop table stream_sessions; --", "/streams/%00"):
        assert_problem(await app_client.get(f"{API}{path}"), 422, "validation-error")
        assert_problem(await app_client.post(f"{API}{path}/start", headers=headers), 422,
                       "validation-error")
    assert_problem(await app_client.get(f"{API}/streams", params={"cursor": "zzz"}), 400,
                   "invalid-cursor")
    assert_problem(await app_client.get(f"{API}/streams", params={"status": "bogus"}), 422,
                   "validation-error")
    assert_problem(await app_client.get(f"{API}/streams", params={"limit": 0}), 422,
                   "validation-error")


async def test_bad_tokens_are_401(app_client, make_user, ctx, clock) -> None:
    _, seller = make_user("seller")
    sid = (await create(app_client, seller))["id"]
    now = clock.now().timestamp()
    expired = mint_token(ctx.jwt_secret, "u1", "seller", -60, now=now)
    forged = mint_token("another-secret-" + "y" * 40, "u1", "seller", 3600, now=now)
    wrong_aud = mint_token(ctx.jwt_secret, "u1", "seller", 3600, audience="other", now=now)
    cases = {
        expired: "Token has expired",
        forged: "Failed to validate JWT signature",
        wrong_aud: "Token audience is not accepted",
        "not-a-jwt": "The token provided is not a valid JWT",
    }
    for token, message in cases.items():
        response = await app_client.post(f"{API}/streams/{sid}/start",
                                         headers={"authorization": f"Bearer {token}"})
        body = assert_problem(response, 401, "invalid-token")
        assert body["detail"] == message
    response = await app_client.post(f"{API}/streams/{sid}/start",
                                     headers={"authorization": "Basic abc"})
    assert_problem(response, 401, "invalid-token")
    assert (await row(ctx, sid)).version == 1


async def test_anon_key_reads_but_cannot_write(app_client, ctx, make_user) -> None:
    _, seller = make_user("seller")
    sid = (await create(app_client, seller))["id"]
    anon = {"authorization": f"Bearer {ctx.anon_key}"}
    assert (await app_client.get(f"{API}/streams/{sid}", headers=anon)).status_code == 200
    assert (await app_client.get(f"{API}/streams/{sid}", headers={"apikey": ctx.anon_key})
            ).status_code == 200
    assert_problem(await app_client.post(f"{API}/streams/{sid}/viewers", headers=anon), 401,
                   "unauthorized")


async def test_viewers_counted_once_and_peak(app_client, make_user) -> None:
    _, seller = make_user("seller")
    sid = (await create(app_client, seller))["id"]
    await app_client.post(f"{API}/streams/{sid}/start", headers=seller)
    buyers = [make_user("buyer") for _ in range(3)]
    for _, headers in buyers:
        for _tab in range(2):  # two tabs count once
            response = await app_client.post(f"{API}/streams/{sid}/viewers", headers=headers)
            assert response.status_code == 200
    stream = (await app_client.get(f"{API}/streams/{sid}")).json()
    assert stream["viewer_count"] == 3 and stream["peak_viewers"] == 3
    await app_client.delete(f"{API}/streams/{sid}/viewers/me", headers=buyers[0][1])
    await app_client.delete(f"{API}/streams/{sid}/viewers/me", headers=buyers[0][1])
    stream = (await app_client.get(f"{API}/streams/{sid}")).json()
    assert stream["viewer_count"] == 2 and stream["peak_viewers"] == 3
    # A heartbeat from a viewer who left (another tab still open) counts them again.
    response = await app_client.post(f"{API}/streams/{sid}/heartbeat", headers=buyers[0][1])
    assert response.json()["role"] == "viewer"
    assert response.json()["stream"]["viewer_count"] == 3
    ended = await app_client.post(f"{API}/streams/{sid}/end", headers=seller)
    assert ended.json()["viewer_count"] == 0
    assert_problem(await app_client.post(f"{API}/streams/{sid}/viewers", headers=buyers[1][1]),
                   409, "stream-ended")


async def test_host_heartbeat(app_client, make_user, clock) -> None:
    _, seller = make_user("seller")
    sid = (await create(app_client, seller))["id"]
    await app_client.post(f"{API}/streams/{sid}/start", headers=seller)
    clock.advance(5)
    response = await app_client.post(f"{API}/streams/{sid}/heartbeat", headers=seller)
    body = response.json()
    assert body["role"] == "host" and body["heartbeat_interval"] > 0
    assert body["stream"]["last_host_heartbeat_at"].startswith(clock.now().isoformat()[:19])


async def test_dev_sign_in_and_me(app_client, ctx) -> None:
    response = await app_client.post(f"{API}/auth/dev-sign-in",
                                     json={"user": "alice", "role": "seller"})
    if not ctx.settings.dev_auth_enabled:  # off by default with a configured secret (here)
        assert_problem(response, 404, "dev-auth-disabled")
        ctx.settings.dev_auth = True
        response = await app_client.post(f"{API}/auth/dev-sign-in",
                                         json={"user": "alice", "role": "seller"})
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = (await app_client.get(f"{API}/auth/me", headers={"authorization": f"Bearer {token}"})).json()
    assert me == {"user_id": "alice", "role": "seller", "signed_in": True}
    assert_problem(await app_client.post(f"{API}/auth/dev-sign-in",
                                         json={"user": "bad user!", "role": "seller"}),
                   422, "validation-error")
    assert_problem(await app_client.post(f"{API}/auth/dev-sign-in",
                                         json={"user": "x", "role": "service"}),
                   422, "validation-error")


async def test_ops_endpoints(app_client) -> None:
    assert (await app_client.get("/healthz")).json() == {"status": "ok"}
    ready = await app_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    await app_client.get(f"{API}/streams")
    metrics = (await app_client.get("/metrics")).text
    assert 'onair_streams{status="live"}' in metrics
    assert "onair_http_requests_total" in metrics and "onair_active_viewers" in metrics
    config = (await app_client.get(f"{API}/config")).json()
    assert config["media_mode"] == "local" and config["anon_key"]
    assert "x-request-id" in ready.headers
    echoed = await app_client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    # Made-up ids are unique; an id that is not a safe token is replaced, not echoed.
    made = {(await app_client.get("/healthz")).headers["x-request-id"] for _ in range(50)}
    assert len(made) == 50
    replaced = await app_client.get("/healthz", headers={"x-request-id": "bad id<script>"})
    assert replaced.headers["x-request-id"] not in ("bad id<script>", "")
    # Any token is an HTTP method; metrics must not grow a time series per invented one.
    for method in ("FOO", "BAR", "BAZ"):
        await app_client.request(method, "/healthz")
    metrics = (await app_client.get("/metrics")).text
    assert 'method="other",route="/healthz",status="405"' in metrics
    assert 'method="FOO"' not in metrics


async def test_readyz_names_failing_part(app_client, ctx) -> None:
    await ctx.broker.close()
    response = await app_client.get("/readyz")
    body = assert_problem(response, 503, "not-ready")
    assert body["checks"]["broker"].startswith("failing") and body["checks"]["database"] == "ok"
