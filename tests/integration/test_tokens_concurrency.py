"""Property 2: concurrent token generation safety, over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import defaultdict

from onair.domain import accesstoken2 as at2
from onair.store.tokens import tokens_of
from tests.integration.test_tokens_api import (  # noqa: F401  (settings is a fixture)
    API,
    APP_ID,
    CERT,
    live_stream,
    settings,
    unix,
)

REQUESTS = 1_000


async def test_property_2_concurrent_token_generation_safety(app_client, make_user, ctx) -> None:
    """Property 2: concurrent token generation safety.

    1,000 concurrent requests from many users across three streams (sellers, co-hosts, buyers;
    issue, refresh and RTM): every one succeeds, every token verifies for exactly its stream's
    channel and its user's stable uid with the privileges of that user's role, no two tokens
    share a salt, and the ledger holds exactly one row per token.
    """
    rng = random.Random(2)
    sellers = [make_user("seller") for _ in range(3)]
    streams = [await live_stream(app_client, headers) for _, headers in sellers]
    cohosts = {}
    for (seller_id, seller_h), sid in zip(sellers, streams, strict=True):
        cohost_id, cohost_h = make_user("buyer")
        response = await app_client.post(f"{API}/streams/{sid}/cohosts",
                                         json={"user_id": cohost_id}, headers=seller_h)
        assert response.status_code == 201
        cohosts[sid] = (cohost_id, cohost_h)
    buyers = [make_user("buyer") for _ in range(150)]

    plan = []
    for _ in range(REQUESTS):
        index = rng.randrange(3)
        sid = streams[index]
        who = rng.random()
        if who < 0.1:
            user, headers, publisher = *sellers[index], True
        elif who < 0.2:
            user, headers, publisher = *cohosts[sid], True
        else:
            user, headers = rng.choice(buyers)
            publisher = False
        path = rng.choice(["rtc-token", "rtc-token", "rtc-token/refresh", "rtm-token"])
        plan.append((sid, user, headers, publisher, path))

    responses = await asyncio.gather(*(
        app_client.post(f"{API}/streams/{sid}/{path}", headers=headers)
        for sid, _, headers, _, path in plan
    ))
    assert [r.status_code for r in responses] == [200] * REQUESTS, next(
        r.text for r in responses if r.status_code != 200)

    salts, hashes = set(), set()
    uid_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    for (sid, user, _, publisher, path), response in zip(plan, responses, strict=True):
        body = response.json()
        now = unix(body["issued_at"])
        parsed = at2.parse(body["token"])
        salts.add(parsed.token.salt)
        hashes.add(hashlib.sha256(body["token"].encode()).hexdigest())
        uid_of[(sid, user)].add(body["uid"])
        assert body["stream_id"] == sid and body["channel"] == f"onair-{sid}"
        if path == "rtm-token":
            at2.verify_rtm(body["token"], app_id=APP_ID, app_certificate=CERT,
                           user_id=str(body["uid"]), now=now, canonical=True)
            continue
        service = at2.verify_rtc(
            body["token"], app_id=APP_ID, app_certificate=CERT, channel=f"onair-{sid}",
            uid=body["uid"], now=now, canonical=True,
        )
        expected = at2.RtcRole.PUBLISHER if publisher else at2.RtcRole.SUBSCRIBER
        assert at2.granted_role(service) is expected
        assert body["role"] == expected.name.lower()

    assert len(salts) == REQUESTS
    assert all(len(uids) == 1 for uids in uid_of.values())  # stable per (stream, user)
    for sid in streams:
        per_stream = [next(iter(u)) for (s, _), u in uid_of.items() if s == sid]
        assert len(per_stream) == len(set(per_stream))  # one uid, one user, per channel

    rows = []
    async with ctx.db.read() as conn:
        for sid in streams:
            rows += await tokens_of(conn, sid)
    assert len(rows) == REQUESTS
    assert {r.token_sha256 for r in rows} == hashes
    for row in rows:
        assert uid_of[(row.stream_id, row.user_id)] == {row.uid}
