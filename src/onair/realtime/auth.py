"""Token checks for realtime, in Supabase Realtime's words (spec §1.4, §3.6, §7.2)."""

from __future__ import annotations

import time
from typing import Callable

import jwt as pyjwt

from onair.auth import jwt as onair_jwt
from onair.auth.jwt import AuthError, JwtVerifier
from onair.realtime.dispatcher import TokenInfo, TokenRejected, Verify, expired_message

CODES = {
    onair_jwt.EXPIRED: "InvalidJWTToken",
    onair_jwt.NOT_A_JWT: "MalformedJWT",
    onair_jwt.BAD_SIGNATURE: "JwtSignatureError",
    onair_jwt.MISSING_CLAIMS: "InvalidJWTToken",
}


def jwt_verify(verifier: JwtVerifier, now: Callable[[], float] = time.time) -> Verify:
    def verify(token: str) -> TokenInfo:
        try:
            principal = verifier.verify(token)
        except AuthError as err:
            message = err.message
            if message == onair_jwt.EXPIRED:
                try:
                    exp = pyjwt.decode(token, options={"verify_signature": False}).get("exp")
                    message = expired_message(float(exp), now())
                except (pyjwt.PyJWTError, TypeError, ValueError):
                    pass
            raise TokenRejected(message, CODES.get(err.message, "InvalidJWTToken")) from None
        exp = principal.claims.get("exp")
        return TokenInfo(principal, float(exp) if isinstance(exp, (int, float)) else None)

    return verify
