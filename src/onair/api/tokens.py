"""REST for Agora tokens, co-hosts and our own token check.

The channel, uid and role of a token come from the stream and the caller's identity; a request
can only ask for *less* (a subscriber token), never name a channel, a uid or a publisher role it
is not entitled to.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.datastructures import Headers

from onair.api import deps
from onair.api.deps import Ctx, RequireUser
from onair.api.fields import Identifier, IdPath, UserId, UserIdPath, checked_path_param
from onair.api.hot_routes import Handler, HotRoute, Reply, answer_as_route, openapi_for
from onair.api.openapi import problems
from onair.context import AppContext
from onair.domain.accesstoken2 import MAX_ACCOUNT_BYTES, MAX_TOKEN_CHARS, MAX_UINT32
from onair.domain.token_policy import TokenRole
from onair.errors import validation_problem
from onair.services.tokens import IssuedToken, TokenService

router = APIRouter(tags=["tokens"], responses=problems(401))


async def get_tokens(ctx: Ctx) -> TokenService:  # async: no worker-thread hop
    return ctx.tokens


Tokens = Annotated[TokenService, Depends(get_tokens)]


class RtcTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["publisher", "subscriber"] | None = Field(
        None, description="Ask for a subscriber token even if entitled to publish; asking for "
        "publisher without being the seller or a co-host is refused (403).",
    )


class TokenOut(BaseModel):
    token: str
    app_id: str
    channel: str
    uid: int
    rtm_user_id: str | None = Field(None, description="RTM login id (the uid as a string).")
    role: Literal["publisher", "subscriber", "rtm"]
    kind: Literal["rtc", "rtm"]
    stream_id: str
    issued_at: datetime
    expires_at: datetime
    refresh_after: datetime = Field(
        description="Fetch a new token (POST …/rtc-token/refresh) at this time."
    )
    previous_role: Literal["publisher", "subscriber", "rtm"] | None = Field(
        None, description="On refresh: the role of your previous token, to notice a change."
    )

    @staticmethod
    def encode(issued: IssuedToken) -> bytes:
        """The TokenOut JSON, encoded directly: this is the hot path, and validating our own
        freshly built values through pydantic cost more than building the token."""
        body = {
            "token": issued.token, "app_id": issued.app_id, "channel": issued.channel,
            "uid": issued.uid, "rtm_user_id": str(issued.uid) if issued.kind == "rtm" else None,
            "role": issued.role.value, "kind": issued.kind, "stream_id": issued.stream_id,
            "issued_at": issued.issued_at, "expires_at": issued.expires_at,
            "refresh_after": issued.refresh_after,
            "previous_role": issued.previous_role.value if issued.previous_role else None,
        }
        return orjson.dumps(body, option=orjson.OPT_UTC_Z)


_RTC_BODY: TypeAdapter[RtcTokenRequest | None] = TypeAdapter(RtcTokenRequest | None)
RTC_PATH = "/streams/{stream_id}/rtc-token"
RTC_REFRESH_PATH = RTC_PATH + "/refresh"


def rtc_handler(refresh: bool) -> Handler:
    async def handle(ctx: AppContext, path_params: Mapping[str, str], headers: Headers,
                     raw: bytes) -> Reply:
        principal = deps.signed_in(await deps.principal_from_headers(ctx, headers))
        try:
            # No body, `null` and `{}` all mean "what I am entitled to".
            body = _RTC_BODY.validate_json(raw) if raw.strip() else None
        except ValidationError as err:
            raise validation_problem(err) from None
        requested = TokenRole(body.role) if body is not None and body.role is not None else None
        issued = await ctx.tokens.issue(principal, checked_path_param(path_params, "stream_id"), "rtc",
                                        requested=requested, refresh=refresh)
        return Reply(200, TokenOut.encode(issued))

    return handle


handle_rtc_token = rtc_handler(refresh=False)
handle_rtc_refresh = rtc_handler(refresh=True)


def hot_routes(prefix: str) -> list[HotRoute]:
    return [HotRoute("POST", prefix + RTC_PATH, handle_rtc_token),
            HotRoute("POST", prefix + RTC_REFRESH_PATH, handle_rtc_refresh)]


_RTC_OPENAPI = openapi_for(RtcTokenRequest, body_required=False)
TOKEN_PROBLEMS = problems(403, 404, 409, 429)


@router.post(RTC_PATH, response_model=TokenOut, openapi_extra=_RTC_OPENAPI, responses=TOKEN_PROBLEMS,
             summary="Agora RTC token for this stream's channel")
async def rtc_token(request: Request) -> Response:
    """Documents the request; a running app answers it through ``HotRoutes``."""
    return await answer_as_route(handle_rtc_token, request)


@router.post(RTC_REFRESH_PATH, response_model=TokenOut, openapi_extra=_RTC_OPENAPI,
             responses=TOKEN_PROBLEMS,
             summary="New RTC token, role re-evaluated now")
async def refresh_rtc_token(request: Request) -> Response:
    """Documents the request; a running app answers it through ``HotRoutes``."""
    return await answer_as_route(handle_rtc_refresh, request)


@router.post("/streams/{stream_id}/rtm-token", response_model=TokenOut, responses=TOKEN_PROBLEMS,
             summary="Agora RTM login token")
async def rtm_token(stream_id: IdPath, principal: RequireUser, tokens: Tokens) -> Response:
    return Response(TokenOut.encode(await tokens.issue(principal, stream_id, "rtm")),
                    media_type="application/json")


class CohostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: UserId


class CohostOut(BaseModel):
    stream_id: str
    user_id: str
    invited_by: str
    created_at: datetime


@router.get("/streams/{stream_id}/cohosts", response_model=list[CohostOut],
            responses=problems(404))
async def list_cohosts(stream_id: IdPath, _principal: RequireUser,
                       tokens: Tokens) -> list[CohostOut]:
    return [CohostOut(**row) for row in await tokens.cohosts(stream_id)]


@router.post("/streams/{stream_id}/cohosts", response_model=CohostOut, status_code=201,
             responses=problems(403, 404, 409),
             summary="Invite a co-host (publisher)")
async def invite_cohost(stream_id: IdPath, body: CohostIn, principal: RequireUser,
                        tokens: Tokens, response: Response) -> CohostOut:
    record, created = await tokens.invite(principal, stream_id, body.user_id)
    if not created:
        response.status_code = 200
    return CohostOut(**record)


@router.delete("/streams/{stream_id}/cohosts/{user_id}", status_code=204,
               responses=problems(403, 404),
               summary="Demote a co-host; their publisher tokens are revoked")
async def demote_cohost(stream_id: IdPath, user_id: UserIdPath, principal: RequireUser,
                        tokens: Tokens) -> Response:
    await tokens.demote(principal, stream_id, user_id)
    return Response(status_code=204)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Identifier = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    channel: Identifier | None = Field(None, max_length=64, description="Expected channel.")
    uid: Annotated[int, Field(ge=0, le=MAX_UINT32)] | Annotated[
        Identifier, Field(max_length=MAX_ACCOUNT_BYTES)
    ] | None = Field(None, description="Expected uid (0 = server-assigned).")
    require_publisher: bool = Field(False, description="Also require the publish privileges.")


class VerifyOut(BaseModel):
    valid: bool
    reason: str | None = Field(
        description="Why not: malformed, wrong-version, wrong-app-id, bad-signature, expired, "
        "missing-service, wrong-channel, wrong-uid, missing-privilege, privilege-expired, "
        "unknown-token (not in our ledger), revoked."
    )
    detail: str | None
    stream_id: str | None = None
    user_id: str | None = None
    uid: int | None = None
    role: str | None = None
    kind: str | None = None
    channel: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


@router.post("/tokens/verify", response_model=VerifyOut, responses=problems(403),
             summary="Check a token the way Agora would, plus our revocations")
async def verify_token(body: VerifyIn, principal: RequireUser, tokens: Tokens) -> VerifyOut:
    result = await tokens.verify(principal, body.token, channel=body.channel, uid=body.uid,
                                 require_publisher=body.require_publisher)
    return VerifyOut(**result)
