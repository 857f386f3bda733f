"""JWT verification: Supabase-shaped tokens, API keys, JWKS, and every way a token is bad."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from onair.auth.jwt import (
    BAD_AUDIENCE,
    BAD_SIGNATURE,
    EXPIRED,
    MISSING_CLAIMS,
    MISSING_SUB,
    NOT_A_JWT,
    AuthError,
    JwtVerifier,
    mint_key,
    mint_token,
)
from onair.domain.identity import Role

SECRET = "s" * 48
NOW = 1_800_000_000.0


def verifier(**kw: Any) -> JwtVerifier:
    return JwtVerifier(SECRET, now=lambda: NOW, **kw)


def encode(claims: dict[str, Any], secret: str = SECRET) -> str:
    return pyjwt.encode(claims, secret, algorithm="HS256")


def test_user_token_maps_app_role() -> None:
    token = mint_token(SECRET, "alice", Role.SELLER, 60, now=NOW)
    principal = verifier().verify(token)
    assert principal.user_id == "alice" and principal.role is Role.SELLER
    assert principal.is_signed_in and not principal.is_staff


def test_supabase_shaped_token_without_app_role_is_buyer() -> None:
    token = encode({"sub": "u-1", "aud": "authenticated", "role": "authenticated",
                    "exp": NOW + 60, "app_metadata": {"provider": "email"}})
    assert verifier().verify(token).role is Role.BUYER


def test_custom_role_claim_and_list_audience() -> None:
    token = encode({"sub": "m", "aud": ["x", "authenticated"], "role": "authenticated",
                    "exp": NOW + 60, "user_role": "moderator"})
    assert verifier(app_role_claim="user_role").verify(token).role is Role.MODERATOR


def test_role_claim_cannot_escalate_to_service() -> None:
    token = mint_token(SECRET, "eve", "service", 60, now=NOW)
    assert verifier().verify(token).role is Role.BUYER


def test_keys() -> None:
    anon = verifier().verify(mint_key(SECRET, "anon", 3600 * 24 * 365 * 10))
    assert anon.role is Role.ANON and anon.user_id is None and not anon.is_signed_in
    service = verifier().verify(mint_key(SECRET, "service_role", 3600 * 24 * 365 * 10))
    assert service.role is Role.SERVICE and service.is_staff
    assert mint_key(SECRET, "anon", 100) == mint_key(SECRET, "anon", 100)  # stable across restarts


@pytest.mark.parametrize("token,message", [
    (encode({"sub": "a", "aud": "authenticated", "role": "authenticated", "exp": NOW - 60}), EXPIRED),
    (encode({"sub": "a", "aud": "authenticated", "role": "authenticated", "exp": NOW + 60},
            "other" * 10), BAD_SIGNATURE),
    (encode({"sub": "a", "aud": "authenticated", "exp": NOW + 60}), MISSING_CLAIMS),
    (encode({"sub": "a", "aud": "authenticated", "role": "authenticated"}), MISSING_CLAIMS),
    (encode({"sub": "a", "aud": "authenticated", "role": "authenticated", "exp": "soon"}),
     MISSING_CLAIMS),
    (encode({"sub": "a", "aud": "elsewhere", "role": "authenticated", "exp": NOW + 60}), BAD_AUDIENCE),
    (encode({"aud": "authenticated", "role": "authenticated", "exp": NOW + 60}), MISSING_SUB),
    ("abc", NOT_A_JWT),
    ("a.b.c", NOT_A_JWT),
    ("", NOT_A_JWT),
    (pyjwt.encode({"role": "anon", "exp": NOW + 60}, None, algorithm="none"), BAD_SIGNATURE),
])
def test_bad_tokens(token: str, message: str) -> None:
    with pytest.raises(AuthError) as caught:
        verifier().verify(token)
    assert caught.value.message == message


def test_cached_token_still_expires() -> None:
    clock = [NOW]
    v = JwtVerifier(SECRET, now=lambda: clock[0], leeway=0)
    token = mint_token(SECRET, "a", Role.BUYER, 10, now=NOW)
    assert v.verify(token).user_id == "a"
    clock[0] = NOW + 11
    with pytest.raises(AuthError, match=EXPIRED):
        v.verify(token)


def test_jwks_rs256() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
        v = JwtVerifier(SECRET, jwks_url=url, now=time.time)
        claims = {"sub": "rs", "aud": "authenticated", "role": "authenticated",
                  "exp": time.time() + 60}
        token = pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        # the first token of a kid waits for the key set (fetched off the loop), later ones hit
        assert asyncio.run(v.verify_async(token)).user_id == "rs"
        assert v.verify(token).user_id == "rs"
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = pyjwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"})
        with pytest.raises(AuthError, match=BAD_SIGNATURE):
            v.verify(forged)
    finally:
        server.shutdown()
        server.server_close()
