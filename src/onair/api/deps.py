"""FastAPI dependencies: the app context and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from onair.auth.jwt import AuthError
from onair.context import AppContext
from onair.domain.identity import Principal, Role
from onair.errors import Problem

ANONYMOUS = Principal(None, Role.ANON)


# The dependencies are `async def` although they never await: FastAPI runs a plain `def`
# dependency in a worker thread, and those thread hops were the largest cost of a token request.


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "invalid-token", "Invalid credentials",
                          "use `Authorization: Bearer <jwt>`",
                          headers={"WWW-Authenticate": "Bearer"})
        return token.strip()
    return request.headers.get("apikey") or None


async def current_principal(request: Request) -> Principal:
    """The caller; requests without a token act as the anon role."""
    token = _bearer(request)
    if token is None:
        return ANONYMOUS
    ctx: AppContext = request.app.state.ctx
    try:
        return ctx.jwt.verify(token)
    except AuthError as err:
        raise Problem(401, "invalid-token", "Invalid credentials", err.message,
                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None


async def require_user(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_signed_in:
        raise Problem(401, "unauthorized", "Authentication required",
                      "sign in: this needs a user token, not the anon key",
                      headers={"WWW-Authenticate": "Bearer"})
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
RequireUser = Annotated[Principal, Depends(require_user)]
Ctx = Annotated[AppContext, Depends(get_ctx)]
