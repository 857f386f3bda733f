"""The Redis-backed rate limits while Redis is down: each fails the way it says it does, never
with a 500 and never by hanging. Chat sends fail open (sent, unlimited, a warning once a minute:
chat stays up for everyone); token issuing fails closed with a 503 ``rate-limit-unavailable``
and Retry-After (no unmetered token minting). Uses a private ``redis-server`` it stops."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from onair.app import create_app, stop_context
from onair.auth.jwt import mint_token
from onair.domain.identity import Role
from onair.errors import Problem
from onair.services.tokens import IssueLimiter
from tests.integration.test_app_redis import PrivateRedis, node_settings, private_redis, started  # noqa: F401

pytestmark = pytest.mark.redis

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"


async def test_chat_fails_open_and_tokens_fail_closed_while_redis_is_down(
    private_redis: PrivateRedis, tmp_path: Path,  # noqa: F811
) -> None:
    settings = node_settings(tmp_path, private_redis.url).model_copy(update={
        "agora_app_id": APP_ID, "agora_app_certificate": SecretStr(CERT)})
    ctx = await started(settings)
    app = create_app(settings, ctx=ctx)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://onair.test") as client:
            def bearer(user: str, role: Role) -> dict[str, str]:
                return {"authorization": f"Bearer {mint_token(ctx.jwt_secret, user, role, 600)}"}

            seller, buyer = bearer("sally", Role.SELLER), bearer("bob", Role.BUYER)
            sid = (await client.post("/api/v1/streams", json={"title": "t"}, headers=seller)).json()["id"]
            assert (await client.post(f"/api/v1/streams/{sid}/start", headers=seller)).status_code == 200
            assert (await client.post(f"/api/v1/streams/{sid}/rtc-token", headers=buyer)).status_code == 200

            private_redis.stop()
            token = await client.post(f"/api/v1/streams/{sid}/rtc-token", headers=buyer)
            assert token.status_code == 503, token.text
            assert token.headers["content-type"] == "application/problem+json"
            assert token.json()["type"].endswith("rate-limit-unavailable")
            assert token.headers["retry-after"] == "1"
            sent = await client.post(f"/api/v1/streams/{sid}/chat", headers=buyer,
                                     json={"body": "still here", "client_msg_id": "c1"})
            assert sent.status_code == 201, sent.text

            await private_redis.start()
            for _ in range(50):  # the limiter's connection pool reconnects on the next request
                token = await client.post(f"/api/v1/streams/{sid}/rtc-token", headers=buyer)
                if token.status_code == 200:
                    break
            assert token.status_code == 200, token.text
    finally:
        await stop_context(ctx)


async def test_a_redis_that_does_not_answer_is_a_prompt_503() -> None:
    """A Redis that accepts connections but never replies (hung, or a black hole) costs a token
    request one timeout, not forever."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()  # the kernel completes the handshake; nobody ever reads or answers
        limiter = IssueLimiter("10/minute", f"redis://127.0.0.1:{mute.getsockname()[1]}/0", timeout=0.3)
        started_at = time.monotonic()
        try:
            with pytest.raises(Problem) as refused:
                await limiter.check("u1")
        finally:
            await limiter.close()
    assert refused.value.status == 503 and refused.value.type.endswith("rate-limit-unavailable")
    assert time.monotonic() - started_at < 5
