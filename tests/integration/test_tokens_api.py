"""Agora tokens over HTTP against the real app, on SQLite and PostgreSQL.

Roles, channels, uids, lifetimes, co-hosts, revocation, our token check, 503 without
credentials and the per-user rate limit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from onair.context import AppContext
from onair.domain import accesstoken2 as at2
from onair.services.tokens import TokenService
from onair.settings import Settings
from onair.store.tokens import tokens_of

API = "/api/v1"
PROBLEM = "application/problem+json"
APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"


@pytest.fixture
def settings(backend: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, jwt_secret="test-secret-" + "x" * 40, reaper_interval=3600,
                    agora_app_id=APP_ID, agora_app_certificate=CERT,
                    agora_token_rate_limit="100000/minute", **backend)


class Collector:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_message(self, topic: str, data: bytes) -> None:
        self.events.append(orjson.loads(data))

    def renewals(self) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.events
                if e.get("kind") == "broadcast" and e.get("event") == "token_renew"]


async def watch(ctx: AppContext, stream_id: str) -> Collector:
    collector = Collector()
    ctx.broker_fan_in.consumers.append(collector)
    await ctx.broker.subscribe(f"stream:{stream_id}")
    return collector


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == type_ and body["status"] == status and body["title"]
    assert CERT not in response.text
    return body


async def live_stream(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post(f"{API}/streams", json={"title": "Drop"}, headers=headers)
    assert response.status_code == 201, response.text
    sid = response.json()["id"]
    assert (await client.post(f"{API}/streams/{sid}/start", headers=headers)).status_code == 200
    return str(sid)


async def rtc(client: httpx.AsyncClient, sid: str, headers: dict[str, str], *,
              refresh: bool = False, **body: Any) -> httpx.Response:
    path = f"{API}/streams/{sid}/rtc-token" + ("/refresh" if refresh else "")
    return await client.post(path, json=body or None, headers=headers)


def verify_locally(body: dict[str, Any], now: int, *, publisher: bool) -> at2.Service:
    return at2.verify_rtc(
        body["token"], app_id=APP_ID, app_certificate=CERT, channel=body["channel"],
        uid=body["uid"], now=now,
        required=at2.PUBLISHER_PRIVILEGES if publisher else at2.SUBSCRIBER_PRIVILEGES,
        canonical=True,
    )


def unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


async def ledger(ctx: AppContext, sid: str) -> list[Any]:
    async with ctx.db.read() as conn:
        return await tokens_of(conn, sid)


async def test_roles_channel_uid_and_lifetimes(app_client, make_user, ctx, clock) -> None:
    seller, seller_h = make_user("seller")
    buyer, buyer_h = make_user("buyer")
    sid = await live_stream(app_client, seller_h)

    pub = (await rtc(app_client, sid, seller_h)).json()
    sub = (await rtc(app_client, sid, buyer_h)).json()
    now = int(clock.now().timestamp())
    assert pub["role"] == "publisher" and sub["role"] == "subscriber"
    for body in (pub, sub):
        assert body["app_id"] == APP_ID and body["channel"] == f"onair-{sid}"
        assert body["stream_id"] == sid and body["kind"] == "rtc"
        assert unix(body["issued_at"]) == now
        assert unix(body["expires_at"]) == now + 3600
        # 80 % of 3600 s = 2880 s; 30 s before expiry would be later, so 80 % wins.
        assert unix(body["refresh_after"]) == now + 2880
        assert 1 <= body["uid"] <= 2**31 - 1
    verify_locally(pub, now, publisher=True)
    verify_locally(sub, now, publisher=False)
    with pytest.raises(at2.TokenRejected) as info:
        verify_locally(sub, now, publisher=True)
    assert info.value.reason is at2.Reason.MISSING_PRIVILEGE
    assert pub["uid"] != sub["uid"]

    clock.advance(100)
    again = (await rtc(app_client, sid, buyer_h, refresh=True)).json()
    assert again["uid"] == sub["uid"] and again["previous_role"] == "subscriber"
    assert again["token"] != sub["token"]

    rows = await ledger(ctx, sid)
    assert len(rows) == 3
    assert {r.token_sha256 for r in rows} == {
        hashlib.sha256(b["token"].encode()).hexdigest() for b in (pub, sub, again)}
    assert all(r.revoked_at is None for r in rows)
    assert {(r.user_id, r.role) for r in rows} == {(seller, "publisher"), (buyer, "subscriber")}


async def test_refresh_after_respects_the_30_second_margin(app_client, make_user, ctx,
                                                           clock) -> None:
    ctx.tokens = TokenService(
        ctx.db, ctx.events, clock,
        ctx.settings.model_copy(update={"agora_token_ttl": 100, "agora_privilege_ttl": 100}),
    )
    _, seller_h = make_user("seller")
    sid = await live_stream(app_client, seller_h)
    body = (await rtc(app_client, sid, seller_h)).json()
    # 80 % of 100 s = 80 s, but the will-expire warning comes 30 s before: refresh at 70 s.
    assert unix(body["refresh_after"]) - unix(body["issued_at"]) == 70


async def test_rtm_token(app_client, make_user, ctx, clock) -> None:
    _, seller_h = make_user("seller")
    _, buyer_h = make_user("buyer")
    sid = await live_stream(app_client, seller_h)
    rtc_body = (await rtc(app_client, sid, buyer_h)).json()
    response = await app_client.post(f"{API}/streams/{sid}/rtm-token", headers=buyer_h)
    body = response.json()
    assert response.status_code == 200 and body["kind"] == "rtm" and body["role"] == "rtm"
    assert body["uid"] == rtc_body["uid"] and body["rtm_user_id"] == str(body["uid"])
    at2.verify_rtm(body["token"], app_id=APP_ID, app_certificate=CERT,
                   user_id=body["rtm_user_id"], now=int(clock.now().timestamp()))


async def test_requested_roles(app_client, make_user) -> None:
    _, seller_h = make_user("seller")
    _, buyer_h = make_user("buyer")
    sid = await live_stream(app_client, seller_h)
    assert (await rtc(app_client, sid, seller_h, role="subscriber")).json()["role"] == "subscriber"
    assert_problem(await rtc(app_client, sid, buyer_h, role="publisher"), 403, "not-a-publisher")
    assert_problem(await rtc(app_client, sid, buyer_h, role="admin"), 422, "validation-error")
    assert_problem(await rtc(app_client, sid, buyer_h, channel="x"), 422, "validation-error")


async def test_stream_errors(app_client, make_user) -> None:
    _, buyer_h = make_user("buyer")
    assert_problem(await rtc(app_client, "not-a-uuid", buyer_h), 404, "stream-not-found")
    missing = "0192f4c8-7a1e-7cc3-b5a2-6d1f0e9a1b2c"
    assert_problem(await rtc(app_client, missing, buyer_h), 404, "stream-not-found")
    response = await app_client.post(f"{API}/streams/{missing}/rtc-token")
    assert_problem(response, 401, "unauthorized")


_shared: dict[str, Any] = {}


@hsettings(max_examples=30, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.none(),
        st.dictionaries(st.sampled_from(["role", "uid", "channel", "stream_id", "privileges",
                                         "publisher", "user_id"]),
                        st.one_of(st.sampled_from(["publisher", "host", "PUBLISHER", 1, True]),
                                  st.integers(), st.text(max_size=8)), max_size=3),
        st.lists(st.integers(), max_size=2),
        st.text(max_size=10),
    ),
    query=st.dictionaries(st.sampled_from(["role", "uid", "channel"]),
                          st.sampled_from(["publisher", "1", "onair-x"]), max_size=2),
    refresh=st.booleans(),
)
async def test_a_buyer_never_gets_a_publisher_token(app_client, make_user, body: Any,
                                                    query: dict[str, str],
                                                    refresh: bool) -> None:
    """Authorization: whatever the request looks like, a buyer gets a subscriber token or an
    error, and the token is always for this stream's channel."""
    if _shared.get("client") is not app_client:  # one stream per test run, not per example
        _, seller_h = make_user("seller")
        _shared.update(client=app_client, sid=await live_stream(app_client, seller_h),
                       buyer_h=make_user("buyer")[1])
    sid, buyer_h = _shared["sid"], _shared["buyer_h"]
    path = f"{API}/streams/{sid}/rtc-token" + ("/refresh" if refresh else "")
    response = await app_client.post(path, params=query, content=json.dumps(body),
                                     headers={**buyer_h, "content-type": "application/json"})
    if response.status_code != 200:
        assert response.status_code in (403, 422), response.text
        return
    token = response.json()["token"]
    service = at2.parse(token).token.service(at2.ServiceType.RTC)
    assert service is not None
    assert at2.granted_role(service) is at2.RtcRole.SUBSCRIBER
    assert set(service.privileges) == {at2.RtcPrivilege.JOIN_CHANNEL}
    assert service.fields[0] == f"onair-{sid}"


async def test_tokens_never_carry_another_streams_channel(app_client, make_user) -> None:
    _, seller_h = make_user("seller")
    _, buyer_h = make_user("buyer")
    first, second = await live_stream(app_client, seller_h), await live_stream(app_client, seller_h)
    for sid in (first, second):
        for headers in (seller_h, buyer_h):
            body = (await rtc(app_client, sid, headers)).json()
            (service,) = at2.parse(body["token"]).token.services
            assert service.fields[0] == body["channel"] == f"onair-{sid}"


async def test_cohost_invite_publish_demote_revoke(app_client, make_user, ctx, clock) -> None:
    seller, seller_h = make_user("seller")
    cohost, cohost_h = make_user("buyer")
    _, other_h = make_user("buyer")
    service_h = {"apikey": ctx.service_key}
    sid = await live_stream(app_client, seller_h)
    events = await watch(ctx, sid)

    assert (await rtc(app_client, sid, cohost_h)).json()["role"] == "subscriber"
    response = await app_client.post(f"{API}/streams/{sid}/cohosts", json={"user_id": cohost},
                                     headers=seller_h)
    assert response.status_code == 201, response.text
    assert response.json()["invited_by"] == seller
    again = await app_client.post(f"{API}/streams/{sid}/cohosts", json={"user_id": cohost},
                                  headers=seller_h)
    assert again.status_code == 200
    listed = (await app_client.get(f"{API}/streams/{sid}/cohosts", headers=other_h)).json()
    assert [c["user_id"] for c in listed] == [cohost]
    assert events.renewals()[-1] == {"user_id": cohost, "reason": "promoted",
                                     "role": "publisher", "revoked": 0}

    pub = (await rtc(app_client, sid, cohost_h, refresh=True)).json()
    assert pub["role"] == "publisher" and pub["previous_role"] == "subscriber"
    verify_locally(pub, int(clock.now().timestamp()), publisher=True)
    check = await app_client.post(f"{API}/tokens/verify", json={"token": pub["token"]},
                                  headers=service_h)
    assert check.json()["valid"] is True and check.json()["role"] == "publisher"

    response = await app_client.delete(f"{API}/streams/{sid}/cohosts/{cohost}", headers=seller_h)
    assert response.status_code == 204
    assert events.renewals()[-1] == {"user_id": cohost, "reason": "demoted",
                                     "role": "subscriber", "revoked": 1}
    deleted = [e for e in events.events if e.get("kind") == "row" and e["type"] == "DELETE"]
    assert [(e["table"], e["old_record"]["user_id"]) for e in deleted] == [
        ("stream_cohosts", cohost)]
    rows = {r.token_sha256: r for r in await ledger(ctx, sid)}
    revoked = rows[hashlib.sha256(pub["token"].encode()).hexdigest()]
    assert revoked.revoked_at is not None and revoked.revoke_reason == "demoted"
    assert sum(r.revoked_at is not None for r in rows.values()) == 1  # subscriber tokens stay

    # Agora would still take the token; our check says it is revoked.
    verify_locally(pub, int(clock.now().timestamp()), publisher=True)
    check = (await app_client.post(f"{API}/tokens/verify", json={"token": pub["token"]},
                                   headers=service_h)).json()
    assert check["valid"] is False and check["reason"] == "revoked"
    assert check["revoke_reason"] == "demoted"

    after = (await rtc(app_client, sid, cohost_h, refresh=True)).json()
    assert after["role"] == "subscriber" and after["previous_role"] == "publisher"
    assert after["uid"] == pub["uid"]
    assert_problem(await rtc(app_client, sid, cohost_h, role="publisher"), 403,
                   "not-a-publisher")


async def test_cohost_authorization(app_client, make_user, ctx) -> None:
    seller, seller_h = make_user("seller")
    cohost, cohost_h = make_user("buyer")
    other, other_h = make_user("buyer")
    sid = await live_stream(app_client, seller_h)
    invite = f"{API}/streams/{sid}/cohosts"
    assert_problem(await app_client.post(invite, json={"user_id": other}, headers=other_h),
                   403, "not-stream-owner")
    assert_problem(await app_client.post(invite, json={"user_id": seller}, headers=seller_h),
                   409, "already-host")
    assert_problem(await app_client.post(invite, json={"user_id": ""}, headers=seller_h),
                   422, "validation-error")
    assert_problem(await app_client.delete(f"{invite}/{other}", headers=seller_h),
                   404, "cohost-not-found")
    assert (await app_client.post(invite, json={"user_id": cohost}, headers=seller_h)
            ).status_code == 201
    assert_problem(await app_client.delete(f"{invite}/{cohost}", headers=other_h),
                   403, "not-stream-owner")
    # A co-host may step down by themselves.
    assert (await app_client.delete(f"{invite}/{cohost}", headers=cohost_h)).status_code == 204

    limited = ctx.settings.agora_max_cohosts
    for i in range(limited):
        response = await app_client.post(invite, json={"user_id": f"u{i}"}, headers=seller_h)
        assert response.status_code == 201
    assert_problem(await app_client.post(invite, json={"user_id": "one-more"}, headers=seller_h),
                   409, "too-many-cohosts")


async def test_stream_end_revokes_every_token(app_client, make_user, ctx) -> None:
    _, seller_h = make_user("seller")
    _, buyer_h = make_user("buyer")
    sid = await live_stream(app_client, seller_h)
    tokens = [(await rtc(app_client, sid, h)).json()["token"] for h in (seller_h, buyer_h)]
    tokens.append((await app_client.post(f"{API}/streams/{sid}/rtm-token",
                                         headers=buyer_h)).json()["token"])
    assert (await app_client.post(f"{API}/streams/{sid}/end", headers=seller_h)
            ).status_code == 200
    rows = await ledger(ctx, sid)
    assert len(rows) == 3 and all(r.revoke_reason == "stream_ended" for r in rows)
    for token in tokens:
        check = (await app_client.post(f"{API}/tokens/verify", json={"token": token},
                                       headers={"apikey": ctx.service_key})).json()
        assert check["reason"] == "revoked"
    for refresh in (False, True):
        assert_problem(await rtc(app_client, sid, buyer_h, refresh=refresh), 409, "stream-ended")
    assert_problem(await app_client.post(f"{API}/streams/{sid}/cohosts",
                                         json={"user_id": "late"}, headers=seller_h),
                   409, "stream-ended")


async def test_verify_endpoint(app_client, make_user, ctx, clock) -> None:
    _, seller_h = make_user("seller")
    _, buyer_h = make_user("buyer")
    service_h = {"apikey": ctx.service_key}
    sid = await live_stream(app_client, seller_h)
    body = (await rtc(app_client, sid, buyer_h)).json()
    verify = f"{API}/tokens/verify"

    assert_problem(await app_client.post(verify, json={"token": body["token"]}, headers=buyer_h),
                   403, "forbidden")
    ok = (await app_client.post(verify, json={"token": body["token"], "channel": body["channel"],
                                              "uid": body["uid"]}, headers=service_h)).json()
    assert ok["valid"] and ok["stream_id"] == sid and ok["uid"] == body["uid"]

    cases = [
        ({"channel": "onair-other"}, "wrong-channel"),
        ({"uid": body["uid"] + 1}, "wrong-uid"),
        ({"require_publisher": True}, "missing-privilege"),
    ]
    for extra, reason in cases:
        got = (await app_client.post(verify, json={"token": body["token"], **extra},
                                     headers=service_h)).json()
        assert (got["valid"], got["reason"]) == (False, reason)

    tampered = body["token"][:-5] + ("A" if body["token"][-5] != "A" else "B") + body["token"][-4:]
    foreign = at2.build_rtc_token(APP_ID, CERT, body["channel"], body["uid"],
                                  at2.RtcRole.PUBLISHER, token_expire=600, privilege_expire=600,
                                  issue_ts=int(clock.now().timestamp()), salt=7)
    for token, reason in [(tampered, None), (foreign, "unknown-token"), ("006abc", "wrong-version")]:
        got = (await app_client.post(verify, json={"token": token}, headers=service_h)).json()
        assert got["valid"] is False and (reason is None or got["reason"] == reason), got
    clock.advance(3601)
    got = (await app_client.post(verify, json={"token": body["token"]}, headers=service_h)).json()
    assert got["reason"] == "expired"
    assert_problem(await app_client.post(verify, json={"token": ""}, headers=service_h),
                   422, "validation-error")


async def test_without_credentials_every_token_endpoint_is_503(app_client, make_user,
                                                               ctx) -> None:
    ctx.tokens = TokenService(
        ctx.db, ctx.events, ctx.clock,
        ctx.settings.model_copy(update={"agora_app_id": None, "agora_app_certificate": None}),
    )
    _, seller_h = make_user("seller")
    sid = await live_stream(app_client, seller_h)
    for path in ("rtc-token", "rtc-token/refresh", "rtm-token"):
        body = assert_problem(await app_client.post(f"{API}/streams/{sid}/{path}",
                                                    headers=seller_h),
                              503, "agora-not-configured")
        assert "ONAIR_AGORA_APP_ID" in body["hint"]
    assert_problem(await app_client.post(f"{API}/tokens/verify", json={"token": "007x"},
                                         headers={"apikey": ctx.service_key}),
                   503, "agora-not-configured")
    # Nothing else breaks.
    assert (await app_client.get(f"{API}/streams/{sid}")).status_code == 200
    assert (await app_client.post(f"{API}/streams/{sid}/cohosts", json={"user_id": "u"},
                                  headers=seller_h)).status_code == 201


async def test_malformed_certificate_counts_as_not_configured(app_client, make_user,
                                                              ctx) -> None:
    secret = "not-a-certificate-but-secret-123"
    ctx.tokens = TokenService(
        ctx.db, ctx.events, ctx.clock,
        ctx.settings.model_copy(update={"agora_app_certificate": SecretStr(secret)}),
    )
    _, seller_h = make_user("seller")
    sid = await live_stream(app_client, seller_h)
    response = await rtc(app_client, sid, seller_h)
    assert_problem(response, 503, "agora-not-configured")
    assert secret not in response.text


async def test_rate_limit_answers_429_with_retry_after(app_client, make_user, ctx) -> None:
    ctx.tokens = TokenService(
        ctx.db, ctx.events, ctx.clock,
        ctx.settings.model_copy(update={"agora_token_rate_limit": "3/minute"}),
    )
    _, seller_h = make_user("seller")
    _, other_h = make_user("buyer")
    sid = await live_stream(app_client, seller_h)
    for _ in range(3):
        assert (await rtc(app_client, sid, seller_h)).status_code == 200
    response = await rtc(app_client, sid, seller_h)
    body = assert_problem(response, 429, "rate-limited")
    assert 1 <= int(response.headers["retry-after"]) <= 60 and body["retry_after"] >= 1
    assert len(await ledger(ctx, sid)) == 3  # refused requests change nothing
    assert (await rtc(app_client, sid, other_h)).status_code == 200  # per user


async def test_rate_limit_is_shared_through_redis() -> None:
    """Two processes with a Redis broker share one budget per user (two limiters here)."""
    from onair.errors import Problem
    from onair.services.tokens import IssueLimiter
    from tests.conftest import REDIS_URL, need_redis

    need_redis()
    first, second = IssueLimiter("3/minute", REDIS_URL), IssueLimiter("3/minute", REDIS_URL)
    user = f"user-{secrets.token_hex(6)}"
    for limiter in (first, second, first):
        await limiter.check(user)
    try:
        with pytest.raises(Problem) as info:
            await second.check(user)
        assert info.value.status == 429 and int(info.value.headers["Retry-After"]) >= 1
    finally:
        await first.close()
        await second.close()
