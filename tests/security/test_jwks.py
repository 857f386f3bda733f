"""Issue 10 finding 3: JWKS keys are fetched off the event loop, rate limited, cached (also
failures and unknown kids), and every bad token is an AuthError — against a real key server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from onair.auth.jwks import JwksCache
from onair.auth.jwt import BAD_SIGNATURE, AuthError, JwtVerifier
from tests.security.jwks_server import (
    JwksServer,
    KeyPair,
    ec_key,
    ed_key,
    jwks_server,
    rsa_key,
    sign,
    user_claims,
)

SECRET = "s" * 48
INTERVAL = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_verifier(server: JwksServer, clock: Clock, **kw: Any) -> JwtVerifier:
    options = {"fetch_timeout": 2.0, "min_interval": INTERVAL, "negative_ttl": INTERVAL,
               "max_age": 600.0, **kw}
    cache = JwksCache(server.url, clock=clock, **options)
    return JwtVerifier(SECRET, jwks=cache)


async def warm(verifier: JwtVerifier) -> None:
    """Let the startup fetch finish (what start_context does, then waits for nothing)."""
    assert verifier.jwks is not None
    verifier.jwks.start()
    await verifier.jwks.wait("")


async def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        await verifier.verify_async(token)
    return caught.value.message


async def test_known_kids_are_synchronous_hits_for_every_key_type() -> None:
    keys = [rsa_key("r1"), ec_key("e1"), ed_key("d1")]
    clock = Clock()
    with jwks_server(*keys) as server:
        verifier = make_verifier(server, clock)
        await warm(verifier)
        for pair in keys:
            assert verifier.verify(sign(pair, claims=user_claims(pair.kid))).user_id == pair.kid
        assert server.requests == 1


async def test_unknown_kids_cost_at_most_one_fetch_per_interval() -> None:
    key = rsa_key("r1")
    clock = Clock()
    with jwks_server(key) as server:
        verifier = make_verifier(server, clock)
        await warm(verifier)
        clock.now += INTERVAL + 1
        # 40 tokens naming 40 made-up kids at once: one shared fetch, every one refused.
        tokens = [sign(key, kid=f"made-up-{i}") for i in range(40)]
        results = await asyncio.gather(*(verifier.verify_async(t) for t in tokens),
                                       return_exceptions=True)
        assert all(isinstance(r, AuthError) and r.message == BAD_SIGNATURE for r in results)
        assert server.requests == 2
        # Within the interval: new made-up kids, and the same ones again, fetch nothing.
        for i in range(40, 80):
            await refused(verifier, sign(key, kid=f"made-up-{i}"))
        await refused(verifier, tokens[0])
        assert server.requests == 2
        clock.now += INTERVAL + 1
        await refused(verifier, sign(key, kid="made-up-after"))
        assert server.requests == 3


async def test_a_rotated_in_key_is_picked_up_after_the_interval() -> None:
    old, new = rsa_key("k-old"), ec_key("k-new")
    clock = Clock()
    with jwks_server(old) as server:
        verifier = make_verifier(server, clock)
        await warm(verifier)
        early = sign(new, claims=user_claims("early"))
        await refused(verifier, early)  # not published yet
        server.keys.append(new)
        clock.now += INTERVAL + 1
        assert (await verifier.verify_async(sign(new, claims=user_claims("rotated")))).user_id == "rotated"
        old_token = sign(old, claims=user_claims("old"))
        assert verifier.verify(old_token).user_id == "old"  # the old key still works
        # retired: gone from the set after the next (background, age-driven) refresh
        server.keys.remove(old)
        clock.now += 601
        verifier.verify(sign(new, claims=user_claims("bg")))  # a hit; starts the refresh
        await verifier.jwks.wait("")  # type: ignore[union-attr]
        assert server.requests == 3
        await refused(verifier, sign(old, claims=user_claims("retired")))
        await refused(verifier, old_token)  # verified (and cached) before: refused now too


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(pair: KeyPair) -> str:
    """The classic confusion: HMAC keyed with the server's public key (PEM), naming its kid."""
    pem = pair.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    signing = (_b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": pair.kid}).encode()) + "."
               + _b64(json.dumps(user_claims("confused")).encode()))
    return signing + "." + _b64(hmac.new(pem, signing.encode(), hashlib.sha256).digest())


def mismatched(signer: KeyPair, named: KeyPair, alg: str) -> str:
    return sign(signer, kid=named.kid, alg=alg)


async def test_only_the_algorithm_of_the_key_type_is_accepted() -> None:
    rsa_pair, ec_pair, ed_pair = rsa_key("rsa"), ec_key("ec"), ed_key("ed")
    p384 = KeyPair("p384", "ES256", ec.generate_private_key(ec.SECP384R1()))
    clock = Clock()
    with jwks_server(rsa_pair, ec_pair, ed_pair, p384) as server:
        verifier = make_verifier(server, clock)
        await warm(verifier)
        bad = [
            mismatched(ec_pair, rsa_pair, "ES256"),  # the reported 500: ES256 header, RSA key
            mismatched(rsa_pair, ec_pair, "RS256"),
            mismatched(ed_pair, ec_pair, "EdDSA"),
            mismatched(ec_pair, ed_pair, "ES256"),
            mismatched(rsa_pair, ed_pair, "RS256"),
            sign(p384, alg="ES384"),  # not an algorithm we accept
            hs256_with_public_key(rsa_pair),
            hs256_with_public_key(ec_pair),
            pyjwt.encode(user_claims(), None, algorithm="none", headers={"kid": "rsa"}),
            sign(rsa_pair, claims=user_claims()).rsplit(".", 1)[0] + ".c2lnbmF0dXJl",
        ]
        for token in bad:
            with pytest.raises(AuthError) as caught:
                verifier.verify(token)
            assert caught.value.message == BAD_SIGNATURE, token
            assert await refused(verifier, token) == BAD_SIGNATURE
        # a P-384 key signing a token that claims ES256 (P-256 only)
        header = _b64(json.dumps({"alg": "ES256", "kid": "p384"}).encode())
        forged = header + "." + sign(p384, alg="ES384").split(".", 1)[1]
        assert await refused(verifier, forged) == BAD_SIGNATURE
        assert server.requests == 1


@pytest.mark.parametrize("setup", ["garbage", "not-a-set", "status-500", "junk-keys", "empty"])
async def test_a_bad_key_server_is_a_refusal_and_is_not_asked_again_at_once(setup: str) -> None:
    good = rsa_key("good")
    clock = Clock()
    with jwks_server(good) as server:
        if setup == "garbage":
            server.body = b"\x00<html>not json"
        elif setup == "not-a-set":
            server.body = b'{"keys": 5}'
        elif setup == "status-500":
            server.status = 500
        elif setup == "junk-keys":
            server.body = json.dumps({"keys": [
                5, {"kid": "x"}, {"kid": "y", "kty": "RSA", "n": "!!", "e": "AQAB"},
                {"kid": "o", "kty": "oct", "k": _b64(b"k" * 32)},
                {"kid": "enc", **{k: v for k, v in good.jwk.items() if k not in ("kid", "use")},
                 "use": "enc"},
            ]}).encode()
        else:
            server.body = b'{"keys": []}'
        verifier = make_verifier(server, clock)
        await warm(verifier)
        for token in (sign(good), sign(good, kid="o", alg="RS256"), sign(good, kid="enc")):
            assert await refused(verifier, token) == BAD_SIGNATURE
        assert server.requests == 1  # failures and unknown kids are remembered


async def test_a_junk_entry_does_not_hide_the_good_keys() -> None:
    good = rsa_key("good")
    clock = Clock()
    with jwks_server(good) as server:
        server.body = json.dumps({"keys": [{"kid": "y", "kty": "RSA", "n": "!!"}, good.jwk]}).encode()
        verifier = make_verifier(server, clock)
        await warm(verifier)
        assert verifier.verify(sign(good)).user_id == "u-jwks"


async def test_a_slow_key_server_never_stalls_the_loop() -> None:
    key = rsa_key("r1")
    clock = Clock()
    with jwks_server(key) as server:
        server.delay = 10.0
        verifier = make_verifier(server, clock, fetch_timeout=0.5)
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        # The synchronous check refuses at once (and starts the fetch in the background) …
        with pytest.raises(AuthError):
            verifier.verify(sign(key))
        assert time.perf_counter() - started < 0.5
        # … the waiting one gives up after the fetch timeout, not the server's 10 s.
        assert await refused(verifier, sign(key)) == BAD_SIGNATURE
        waited = time.perf_counter() - started
        stop.set()
        await tick
        assert waited < 3.0
        assert max(gaps) < 0.4  # the loop kept turning (a blocking fetch: a 10 s gap)
        assert server.requests == 1


def test_without_an_event_loop_a_new_kid_is_refused_not_fetched() -> None:
    key = rsa_key("r1")
    with jwks_server(key) as server:
        verifier = make_verifier(server, Clock())
        with pytest.raises(AuthError):
            verifier.verify(sign(key))
        time.sleep(0.1)
        assert server.requests == 0
