"""Token checks for realtime, in Supabase Realtime's words (spec §1.4, §3.6, §7.2)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt as pyjwt

from onair.auth import jwt as onair_jwt
from onair.auth.jwt import AuthError, JwtVerifier
from onair.domain.identity import Principal
from onair.realtime.dispatcher import TokenInfo, TokenRejected, Verify, expired_message

CODES = {
    onair_jwt.EXPIRED: "InvalidJWTToken",
    onair_jwt.NOT_A_JWT: "MalformedJWT",
    onair_jwt.BAD_SIGNATURE: "JwtSignatureError",
    onair_jwt.MISSING_CLAIMS: "InvalidJWTToken",
}

AsyncVerify = Callable[[str], Awaitable[TokenInfo]]


def _rejected(err: AuthError, token: str, now: Callable[[], float]) -> TokenRejected:
    message = err.message
    if message == onair_jwt.EXPIRED:
        try:
            exp: Any = pyjwt.decode(token, options={"verify_signature": False}).get("exp")
            message = expired_message(float(exp), now())
        except (pyjwt.PyJWTError, TypeError, ValueError):
            pass
    return TokenRejected(message, CODES.get(err.message, "InvalidJWTToken"))


def _info(principal: Principal) -> TokenInfo:
    exp = principal.claims.get("exp")
    return TokenInfo(principal, float(exp) if isinstance(exp, (int, float)) else None)


def jwt_verify(verifier: JwtVerifier, now: Callable[[], float] = time.time) -> Verify:
    """From memory only (the WebSocket upgrade cannot wait): a JWKS key not seen yet is a
    refusal now, and its fetch runs in the background for the client's reconnect."""
    def verify(token: str) -> TokenInfo:
        try:
            return _info(verifier.verify(token))
        except AuthError as err:
            raise _rejected(err, token, now) from None

    return verify


def jwt_verify_async(verifier: JwtVerifier, now: Callable[[], float] = time.time) -> AsyncVerify:
    """For joins and token refreshes, which may wait briefly for a new JWKS key."""
    async def verify(token: str) -> TokenInfo:
        try:
            return _info(await verifier.verify_async(token))
        except AuthError as err:
            raise _rejected(err, token, now) from None

    return verify
