"""Auth endpoints: dev sign-in (embedded default only) and who-am-I."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from onair.api.deps import Ctx, CurrentPrincipal
from onair.api.openapi import problems
from onair.auth.jwt import mint_token
from onair.domain.identity import Role
from onair.problems import DEV_AUTH_DISABLED
from onair.settings import is_loopback_host

router = APIRouter(prefix="/auth", tags=["auth"])


class DevSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Literal["seller", "buyer", "moderator", "admin"] = "buyer"


class SignedIn(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user_id: str
    role: str


class Me(BaseModel):
    user_id: str | None
    role: str
    signed_in: bool


FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def _local_request(request: Request) -> bool:
    """From this machine, by a local name, not relayed. The bind address alone is not enough:
    the app may be served by something other than `onair serve`, a reverse proxy on this host
    connects from loopback (and usually says so in a forwarding header), and a DNS-rebinding
    page reaches a loopback port under its own host name."""
    if request.client is None or not is_loopback_host(request.client.host):
        return False
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback_host(name)


@router.post("/dev-sign-in", response_model=SignedIn, responses=problems(404))
async def dev_sign_in(body: DevSignIn, ctx: Ctx, request: Request) -> SignedIn:
    settings = ctx.settings
    if not settings.dev_auth_enabled or (settings.dev_auth is None and not _local_request(request)):
        raise DEV_AUTH_DISABLED(
            "it is on by default only for a loopback bind with the generated secret; "
            "ONAIR_DEV_AUTH=true forces it on (never in production)")
    token = mint_token(ctx.jwt_secret, body.user, Role(body.role), settings.dev_token_ttl,
                       audience=settings.jwt_audience, app_role_claim=settings.jwt_app_role_claim,
                       now=ctx.clock.now().timestamp())
    return SignedIn(access_token=token, expires_in=settings.dev_token_ttl, user_id=body.user,
                    role=body.role)


@router.get("/me", response_model=Me, responses=problems(401))
async def me(principal: CurrentPrincipal) -> Me:
    return Me(user_id=principal.user_id, role=principal.role.value,
              signed_in=principal.is_signed_in)
