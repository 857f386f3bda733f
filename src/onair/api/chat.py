"""REST for chat: send, history/resync, edit, delete, mutes and bans, slow mode.

Paths (under /api/v1):
  POST   /streams/{id}/chat                      send (201 new, 200 a retry of the same client_msg_id)
  GET    /streams/{id}/chat?before_seq=&limit=   history, newest first
  GET    /streams/{id}/chat?after_seq=&limit=    resync, oldest first
  GET    /streams/{id}/chat/{message_id}         one message (or its tombstone)
  PATCH  /streams/{id}/chat/{message_id}         edit (sender, within the edit window)
  DELETE /streams/{id}/chat/{message_id}         delete → tombstone (sender, seller, moderator)
  GET    /streams/{id}/chat/sanctions            running mutes and bans (seller, moderator)
  POST   /streams/{id}/chat/sanctions            mute or ban a user
  DELETE /streams/{id}/chat/sanctions/{user_id}  lift a user's mutes/bans (?kind=mute|ban)
  GET    /streams/{id}/chat/settings             slow mode (anyone)
  PUT    /streams/{id}/chat/settings             set slow mode (seller, moderator)

Bodies are plain text: never HTML; clients escape on render.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.datastructures import Headers

from onair.api import deps
from onair.api.fields import IdPath, Line, UserId, UserIdPath, checked_path_param
from onair.api.hot_routes import HotRoute, Reply, answer_as_route, openapi_for
from onair.api.openapi import problems
from onair.context import AppContext
from onair.errors import validation_problem
from onair.store.chat import Message, SanctionRow

router = APIRouter(tags=["chat"], responses=problems(401))

CLIENT_MSG_ID = r"^[A-Za-z0-9._:~-]{1,64}$"


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: StrictStr = Field(description="Plain text; normalized (NFC, controls removed, trimmed).")
    client_msg_id: str = Field(
        pattern=CLIENT_MSG_ID,
        description="Sender-chosen id (e.g. a UUID); resending it returns the original message.",
    )
    client_sent_at: AwareDatetime | None = Field(
        None, description="The sender's clock; kept for display, never used for ordering."
    )


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: StrictStr


class SanctionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    kind: Literal["mute", "ban"]
    duration_seconds: int | None = Field(
        None, description="Required for a mute; a ban without it lasts until lifted."
    )
    reason: Line | None = Field(None, max_length=500)


class ChatSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slow_mode_seconds: int = Field(description="0 turns slow mode off.")


class MessageOut(BaseModel):
    id: str
    stream_id: str
    seq: int
    sender_id: str
    client_msg_id: str
    body: str | None = Field(description="null for a deleted message (tombstone).")
    deleted: bool
    client_sent_at: datetime | None
    created_at: datetime
    edited_at: datetime | None
    edited_by: str | None
    deleted_at: datetime | None
    deleted_by: str | None


class PageOut(BaseModel):
    messages: list[MessageOut]
    next_cursor: int | None = Field(
        description="Pass as before_seq (history) or after_seq (resync) for the next page; "
        "null when there is nothing more."
    )
    last_seq: int = Field(description="The stream's newest seq when the page was read.")


class SanctionOut(BaseModel):
    id: str
    stream_id: str
    user_id: str
    kind: str
    until: datetime | None
    reason: str | None
    created_by: str
    created_at: datetime


class ChatSettingsOut(BaseModel):
    stream_id: str
    slow_mode_seconds: int


class LiftedOut(BaseModel):
    lifted: int


def message_out(message: Message) -> dict[str, Any]:
    values = message.record()
    values["deleted"] = message.deleted
    if message.deleted:
        values["body"] = None
    return values


def json_response(content: Any, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """Encode with orjson directly: the response models above document the shape, but running
    1,000 history rows through pydantic again would cost more than the query."""
    return Response(orjson.dumps(content, option=orjson.OPT_UTC_Z), status_code=status_code,
                    media_type="application/json", headers=headers)


def sanction_out(row: SanctionRow) -> dict[str, Any]:
    return {
        "id": row.id, "stream_id": row.stream_id, "user_id": row.user_id, "kind": row.kind,
        "until": row.until, "reason": row.reason, "created_by": row.created_by,
        "created_at": row.created_at,
    }


Ctx = deps.Ctx
User = deps.RequireUser
Anyone = deps.CurrentPrincipal


SEND_PATH = "/streams/{stream_id}/chat"


def hot_routes(prefix: str) -> list[HotRoute]:
    return [HotRoute("POST", prefix + SEND_PATH, handle_send)]


@router.post(
    SEND_PATH,
    status_code=201,
    response_model=MessageOut,
    responses={200: {"model": MessageOut, "description": "A retry: the original message."},
               **problems(403, 404, 409, 429)},
    openapi_extra=openapi_for(SendIn, body_required=True),
)
async def send_message(request: Request) -> Response:
    """Documents the send; a running app answers it through ``HotRoutes`` (see hot_routes())."""
    return await answer_as_route(handle_send, request)


async def handle_send(ctx: AppContext, path_params: Mapping[str, str], headers: Headers,
                      raw: bytes) -> Reply:
    stream_id = checked_path_param(path_params, "stream_id")
    principal = deps.signed_in(await deps.principal_from_headers(ctx, headers))
    try:
        payload = SendIn.model_validate_json(raw)
    except ValidationError as err:
        raise validation_problem(err) from None
    result = await ctx.chat.send(
        principal, stream_id, payload.body, payload.client_msg_id, payload.client_sent_at
    )
    return Reply(
        201 if result.created else 200,
        orjson.dumps(message_out(result.message), option=orjson.OPT_UTC_Z),
        {"Location": f"/api/v1/streams/{stream_id}/chat/{result.message.id}"},
    )


@router.get("/streams/{stream_id}/chat", response_model=PageOut, responses=problems(400, 404))
async def list_messages(
    stream_id: IdPath,
    ctx: Ctx,
    _: Anyone,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    page = await ctx.chat.page(stream_id, before_seq=before_seq, after_seq=after_seq, limit=limit)
    return json_response({
        "messages": [message_out(m) for m in page.messages],
        "next_cursor": page.next_cursor,
        "last_seq": page.last_seq,
    })


@router.get("/streams/{stream_id}/chat/settings", response_model=ChatSettingsOut,
            responses=problems(404))
async def get_chat_settings(stream_id: IdPath, ctx: Ctx, _: Anyone) -> dict[str, Any]:
    stream = await ctx.chat.chat_settings(stream_id)
    return {"stream_id": stream.id, "slow_mode_seconds": stream.slow_mode_seconds}


@router.put("/streams/{stream_id}/chat/settings", response_model=ChatSettingsOut,
            responses=problems(403, 404))
async def put_chat_settings(
    stream_id: IdPath, payload: ChatSettingsIn, ctx: Ctx, principal: User
) -> dict[str, Any]:
    seconds = await ctx.chat.set_slow_mode(principal, stream_id, payload.slow_mode_seconds)
    return {"stream_id": stream_id, "slow_mode_seconds": seconds}


@router.get("/streams/{stream_id}/chat/sanctions", response_model=list[SanctionOut],
            responses=problems(403, 404))
async def list_sanctions(stream_id: IdPath, ctx: Ctx, principal: User) -> list[dict[str, Any]]:
    return [sanction_out(row) for row in await ctx.chat.sanctions(principal, stream_id)]


@router.post("/streams/{stream_id}/chat/sanctions", status_code=201, response_model=SanctionOut,
             responses=problems(403, 404, 409))
async def create_sanction(
    stream_id: IdPath, payload: SanctionIn, ctx: Ctx, principal: User
) -> dict[str, Any]:
    row = await ctx.chat.sanction(
        principal, stream_id, payload.user_id, payload.kind, payload.duration_seconds,
        payload.reason,
    )
    return sanction_out(row)


@router.delete("/streams/{stream_id}/chat/sanctions/{user_id}", response_model=LiftedOut,
               responses=problems(403, 404))
async def lift_sanctions(
    stream_id: IdPath,
    user_id: UserIdPath,
    ctx: Ctx,
    principal: User,
    kind: Literal["mute", "ban"] | None = None,
) -> dict[str, int]:
    return {"lifted": await ctx.chat.lift(principal, stream_id, user_id, kind)}


@router.get("/streams/{stream_id}/chat/{message_id}", response_model=MessageOut,
            responses=problems(404))
async def get_message(stream_id: IdPath, message_id: IdPath, ctx: Ctx, _: Anyone) -> dict[str, Any]:
    return message_out(await ctx.chat.get(stream_id, message_id))


@router.patch("/streams/{stream_id}/chat/{message_id}", response_model=MessageOut,
              responses=problems(403, 404, 409))
async def edit_message(
    stream_id: IdPath, message_id: IdPath, payload: EditIn, ctx: Ctx, principal: User
) -> dict[str, Any]:
    return message_out(await ctx.chat.edit(principal, stream_id, message_id, payload.body))


@router.delete("/streams/{stream_id}/chat/{message_id}", response_model=MessageOut,
               responses=problems(403, 404))
async def delete_message(
    stream_id: IdPath, message_id: IdPath, ctx: Ctx, principal: User
) -> dict[str, Any]:
    return message_out(await ctx.chat.delete(principal, stream_id, message_id))
