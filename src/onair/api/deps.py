"""FastAPI dependencies: the app context and the caller's identity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from onair.auth.jwt import AuthError, SigningKeyPending
from onair.context import AppContext
from onair.domain.identity import Principal, Role
from onair.problems import INVALID_TOKEN, UNAUTHORIZED

ANONYMOUS = Principal(None, Role.ANON)


# The dependencies are `async def` although they never await: FastAPI runs a plain `def`
# dependency in a worker thread, and those thread hops were the largest cost of a token request.


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def bearer_token(authorization: str | None, apikey: str | None) -> str | None:
    """The caller's JWT: `Authorization: Bearer …`, else the `apikey` header (as Supabase)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise INVALID_TOKEN("use `Authorization: Bearer <jwt>`",
                                headers={"WWW-Authenticate": "Bearer"})
        return token.strip()
    return apikey or None


async def principal_from_headers(ctx: AppContext, headers: Mapping[str, str]) -> Principal:
    """The caller; requests without a token act as the anon role. A token is checked from
    memory; only one signed with a JWKS key not seen yet waits for the key set (off the loop)."""
    token = bearer_token(headers.get("authorization"), headers.get("apikey"))
    if token is None:
        return ANONYMOUS
    try:
        try:
            return ctx.jwt.verify(token)
        except SigningKeyPending:
            return await ctx.jwt.verify_async(token)
    except AuthError as err:
        raise INVALID_TOKEN(err.message,
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None


def signed_in(principal: Principal) -> Principal:
    if not principal.is_signed_in:
        raise UNAUTHORIZED("sign in: this needs a user token, not the anon key",
                           headers={"WWW-Authenticate": "Bearer"})
    return principal


async def current_principal(request: Request) -> Principal:
    """The caller; requests without a token act as the anon role."""
    return await principal_from_headers(request.app.state.ctx, request.headers)


async def require_user(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    return signed_in(principal)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
RequireUser = Annotated[Principal, Depends(require_user)]
Ctx = Annotated[AppContext, Depends(get_ctx)]
