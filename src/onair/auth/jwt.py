"""Supabase-compatible JWTs: verification of user, anon and service keys, and minting.

Supabase Auth signs user tokens with HS256 (the project's JWT secret) or, on newer projects,
with asymmetric keys published as JWKS (see :mod:`onair.auth.jwks`: :meth:`JwtVerifier.verify`
takes keys from memory only; :meth:`JwtVerifier.verify_async` also waits briefly for a key set
fetch when a kid is new). Claims checked: ``exp`` and ``role`` always (the realtime server
refuses tokens without them), ``sub`` and ``aud`` for signed-in users. Error messages are
Supabase Realtime's, so clients that match on them keep working.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt

from onair.auth.jwks import ALGORITHMS, JwksCache, KeyNotCached, KeyUnavailable
from onair.domain.identity import Principal, Role

EXPIRED = "Token has expired"
NOT_A_JWT = "The token provided is not a valid JWT"
BAD_SIGNATURE = "Failed to validate JWT signature"
MISSING_CLAIMS = "Fields `role` and `exp` are required in JWT"
BAD_AUDIENCE = "Token audience is not accepted"
MISSING_SUB = "Field `sub` is required in a user JWT"
NOT_YET_VALID = "Token is not valid yet"

# A fixed issue time makes the anon/service keys a pure function of the secret: restarting the
# server prints the same keys, and old copies keep working.
KEY_ISSUED_AT = 1767225600  # 2026-01-01T00:00:00Z


class AuthError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SigningKeyPending(AuthError):
    """Signed with a JWKS key we do not hold yet: refused by :meth:`JwtVerifier.verify`, which
    never waits; :meth:`JwtVerifier.verify_async` waits for the key set fetch and tries again."""

    def __init__(self, kid: str) -> None:
        super().__init__(BAD_SIGNATURE)
        self.kid = kid


def _claim_path(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class JwtVerifier:
    """Verifies bearer tokens; results are cached per token string until it expires."""

    def __init__(
        self,
        secret: str,
        *,
        audience: str = "authenticated",
        app_role_claim: str = "app_metadata.role",
        leeway: float = 5.0,
        jwks_url: str | None = None,
        jwks: JwksCache | None = None,
        cache_size: int = 10_000,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._now = now
        self._secret = secret
        self._audience = audience
        self._role_claim = app_role_claim
        self._leeway = leeway
        self.jwks = jwks or (JwksCache(jwks_url) if jwks_url else None)
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        if self.jwks is not None:
            self.jwks.on_keys_dropped = self._cache.clear
        self._cache_size = cache_size

    def verify(self, token: str, now: float | None = None) -> Principal:
        now = self._now() if now is None else now
        hit = self._cache.get(token)
        if hit is not None:
            principal, exp = hit
            if now <= exp + self._leeway:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]
            raise AuthError(EXPIRED)
        claims = self._decode(token, now)
        principal = self._principal(claims)
        self._cache[token] = (principal, float(claims["exp"]))
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def verify_async(self, token: str) -> Principal:
        """:meth:`verify`, but a token signed with a key we do not hold yet waits (at most the
        JWKS fetch timeout, on a fetch shared with every other waiter) instead of failing."""
        try:
            return self.verify(token)
        except SigningKeyPending as pending:
            assert self.jwks is not None
            await self.jwks.wait(pending.kid)
        return self.verify(token)

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims (uncached; for `access_token` refreshes and diagnostics)."""
        return self._decode(token, self._now())

    def _key_for(self, token: str) -> Any:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(NOT_A_JWT) from None
        alg = header.get("alg")
        if alg == "HS256":
            return self._secret, ["HS256"]
        if self.jwks is not None and alg in ALGORITHMS:
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise AuthError(BAD_SIGNATURE)
            try:
                return self.jwks.key(kid, alg), [alg]
            except KeyNotCached:
                raise SigningKeyPending(kid) from None
            except KeyUnavailable:  # e.g. an ES256 header naming an RSA key
                raise AuthError(BAD_SIGNATURE) from None
        raise AuthError(BAD_SIGNATURE)  # `none`, HS384, …, or no JWKS configured

    def _decode(self, token: str, now: float) -> dict[str, Any]:
        if not isinstance(token, str) or token.count(".") != 2:
            raise AuthError(NOT_A_JWT)
        key, algorithms = self._key_for(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                # Time claims are checked below against our clock (tests move it by hand).
                options={"verify_aud": False, "verify_exp": False, "verify_iat": False,
                         "verify_nbf": False, "require": []},
            )
        except jwt.InvalidSignatureError:
            raise AuthError(BAD_SIGNATURE) from None
        except jwt.PyJWTError:
            raise AuthError(NOT_A_JWT) from None
        except (ValueError, TypeError):  # a key the library could not use: still a bad token
            raise AuthError(BAD_SIGNATURE) from None
        exp, role = claims.get("exp"), claims.get("role")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or not isinstance(role, str):
            raise AuthError(MISSING_CLAIMS)
        if now > exp + self._leeway:
            raise AuthError(EXPIRED)
        nbf = claims.get("nbf")
        if isinstance(nbf, (int, float)) and now + self._leeway < nbf:
            raise AuthError(NOT_YET_VALID)
        if role not in ("anon", "service_role"):
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if self._audience not in auds:
                raise AuthError(BAD_AUDIENCE)
            if not isinstance(claims.get("sub"), str) or not claims["sub"]:
                raise AuthError(MISSING_SUB)
        return claims

    def _principal(self, claims: dict[str, Any]) -> Principal:
        role = claims["role"]
        if role == "anon":
            return Principal(None, Role.ANON, claims)
        if role == "service_role":
            return Principal(claims.get("sub") or "service", Role.SERVICE, claims)
        app_role = Role.parse(_claim_path(claims, self._role_claim), Role.BUYER)
        if app_role in (Role.ANON, Role.SERVICE):
            app_role = Role.BUYER  # those come only from the key's own `role`
        return Principal(claims["sub"], app_role, claims)


def mint_token(
    secret: str,
    user_id: str,
    app_role: Role | str,
    ttl: float,
    *,
    audience: str = "authenticated",
    app_role_claim: str = "app_metadata.role",
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A user JWT shaped like Supabase Auth's (role `authenticated`, app role in a claim)."""

    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user_id,
        "aud": audience,
        "role": "authenticated",
        "iat": issued,
        "exp": int(issued + ttl),
        "iss": "onair",
    }
    target = claims
    *parents, leaf = app_role_claim.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = str(app_role)
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_key(secret: str, role: str, ttl: float) -> str:
    """The anon (`role: anon`) or service (`role: service_role`) API key."""
    return jwt.encode(
        {"role": role, "iss": "onair", "iat": KEY_ISSUED_AT, "exp": int(KEY_ISSUED_AT + ttl)},
        secret,
        algorithm="HS256",
    )
