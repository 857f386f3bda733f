"""Issue 10 finding 3 against a real ``onair serve`` with ``ONAIR_JWKS_URL`` set: a slow key
server does not freeze anything, made-up kids cost at most one fetch per interval, a token whose
header names a key of another type is a 401 on REST and a refused WebSocket (never a 500), and
a key rotated in at the key server is picked up after the refresh interval."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets

from tests.compat.onair_server import OnairServer, run_server
from tests.security.jwks_server import JwksServer, ec_key, jwks_server, rsa_key, sign, user_claims

INTERVAL = 1.0


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {"rsa": rsa_key("rsa-1"), "ec": ec_key("ec-1"), "later": rsa_key("rsa-2")}


@pytest.fixture(scope="module")
def jwks(keys: dict[str, object]) -> Iterator[JwksServer]:
    with jwks_server(keys["rsa"], keys["ec"]) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(scope="module")
def onair(jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    env = {"ONAIR_JWKS_URL": jwks.url, "ONAIR_JWKS_FETCH_TIMEOUT": "2",
           "ONAIR_JWKS_MIN_REFRESH_INTERVAL": str(INTERVAL), "ONAIR_JWKS_NEGATIVE_TTL": str(INTERVAL)}
    with run_server(tmp_path_factory.mktemp("onair-jwks"), **env) as server:
        yield server


def me(onair: OnairServer, token: str, timeout: float = 30) -> httpx.Response:
    return httpx.get(f"{onair.url}/api/v1/auth/me", headers={"authorization": f"Bearer {token}"},
                     timeout=timeout)


def test_rs256_and_es256_tokens_are_accepted(onair: OnairServer, keys: dict) -> None:
    for name in ("rsa", "ec"):
        response = me(onair, sign(keys[name], claims=user_claims(f"user-{name}")))
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == f"user-{name}"


def test_a_key_of_another_type_is_401_and_a_refused_upgrade(onair: OnairServer, keys: dict) -> None:
    token = sign(keys["ec"], kid=keys["rsa"].kid, alg="ES256")  # ES256 header naming the RSA key
    response = me(onair, token)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("invalid-token")

    async def upgrade() -> int:
        try:
            async with websockets.connect(f"{onair.ws_url}/websocket?apikey={token}&vsn=1.0.0"):
                return 101
        except websockets.InvalidStatus as refused:
            return refused.response.status_code

    async def join_with_access_token() -> dict:
        async with websockets.connect(f"{onair.ws_url}/websocket?apikey={onair.anon_key}&vsn=2.0.0") as ws:
            await ws.send(json.dumps(["1", "1", "realtime:room", "phx_join",
                                      {"config": {}, "access_token": token}]))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))[4]

    assert asyncio.run(upgrade()) == 401
    reply = asyncio.run(join_with_access_token())
    assert reply["status"] == "error" and "JwtSignatureError" in reply["response"]["reason"]
    assert httpx.get(f"{onair.url}/healthz").status_code == 200


@pytest.fixture(scope="module")
def slow_key_server(keys: dict[str, object], tmp_path_factory: pytest.TempPathFactory,
                    ) -> Iterator[tuple[OnairServer, JwksServer]]:
    """A key server that takes 10 s to answer from the start (down, or under attack)."""
    with jwks_server(keys["rsa"]) as slow:  # type: ignore[arg-type]
        slow.delay = 10.0
        env = {"ONAIR_JWKS_URL": slow.url, "ONAIR_JWKS_FETCH_TIMEOUT": "2"}
        with run_server(tmp_path_factory.mktemp("onair-jwks-slow"), **env) as server:
            yield server, slow


def test_a_slow_key_server_does_not_freeze_the_server(slow_key_server: tuple[OnairServer, JwksServer],
                                                      keys: dict) -> None:
    onair, _ = slow_key_server
    with ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        pending = [pool.submit(me, onair, sign(keys["rsa"])),
                   pool.submit(me, onair, sign(keys["rsa"], kid="not-published"))]
        time.sleep(0.3)  # the requests are waiting for the key set now
        latencies = []
        for _ in range(5):
            t = time.perf_counter()
            assert httpx.get(f"{onair.url}/healthz", timeout=30).status_code == 200
            latencies.append(time.perf_counter() - t)
        answers = [p.result().status_code for p in pending]
        waited = time.perf_counter() - started
    assert max(latencies) < 1.0, latencies  # a fetch on the loop: ~10 s each
    assert answers == [401, 401]
    assert waited < 8.0  # the fetch timeout (2 s) bounds the wait, not the key server


def test_made_up_kids_cost_at_most_one_fetch_per_interval(onair: OnairServer, jwks: JwksServer,
                                                          keys: dict) -> None:
    time.sleep(INTERVAL + 0.2)
    before = jwks.requests
    started = time.perf_counter()
    tokens = [sign(keys["rsa"], kid=f"made-up-{i}") for i in range(60)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda t: me(onair, t).status_code, tokens))
    elapsed = time.perf_counter() - started
    assert answers == [401] * len(tokens)
    assert jwks.requests - before <= 1 + int(elapsed / INTERVAL), (jwks.requests - before, elapsed)


def test_a_rotated_in_key_is_picked_up(onair: OnairServer, jwks: JwksServer, keys: dict) -> None:
    time.sleep(INTERVAL + 0.2)
    jwks.keys.append(keys["later"])
    try:
        response = me(onair, sign(keys["later"], claims=user_claims("rotated")))
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == "rotated"
    finally:
        jwks.keys.remove(keys["later"])

