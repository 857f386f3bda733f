"""REST for streams: create, read, list, transitions, viewers, heartbeats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from onair.api.deps import Ctx, CurrentPrincipal, RequireUser
from onair.api.fields import Identifier, IdPath, Line
from onair.api.openapi import problems
from onair.domain.streams import Action, Status, Stream, allowed_actions
from onair.problems import VALIDATION_ERROR

router = APIRouter(prefix="/streams", tags=["streams"], responses=problems(401))


class StreamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Line = Field(min_length=1, max_length=500,
                        description="One line of text; whitespace runs become one space.")


class EndRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Line | None = Field(default=None, max_length=200)


class StreamOut(BaseModel):
    id: str
    seller_id: str
    title: str
    status: Status
    version: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    paused_at: datetime | None
    ended_at: datetime | None
    pause_reason: str | None
    end_reason: str | None
    last_host_heartbeat_at: datetime | None
    viewer_count: int
    peak_viewers: int
    allowed_actions: list[str]

    @classmethod
    def of(cls, stream: Stream) -> StreamOut:
        return cls(
            id=stream.id, seller_id=stream.seller_id, title=stream.title, status=stream.status,
            version=stream.version, created_at=stream.created_at, updated_at=stream.updated_at,
            started_at=stream.started_at, paused_at=stream.paused_at, ended_at=stream.ended_at,
            pause_reason=stream.pause_reason, end_reason=stream.end_reason,
            last_host_heartbeat_at=stream.last_host_heartbeat_at,
            viewer_count=stream.viewer_count, peak_viewers=stream.peak_viewers,
            allowed_actions=allowed_actions(stream.status),
        )


class StreamPage(BaseModel):
    items: list[StreamOut]
    next_cursor: str | None


class HeartbeatOut(BaseModel):
    role: Literal["host", "viewer"]
    heartbeat_interval: float
    stream: StreamOut


@router.post("", status_code=201, response_model=StreamOut, responses=problems(403))
async def create_stream(body: StreamCreate, principal: RequireUser, ctx: Ctx) -> StreamOut:
    limit = ctx.settings.stream_title_max_chars
    if len(body.title) > limit:
        raise VALIDATION_ERROR(f"title: at most {limit} characters")
    return StreamOut.of(await ctx.streams.create(principal, body.title))


@router.get("", response_model=StreamPage, responses=problems(400))
async def list_streams(
    ctx: Ctx,
    _principal: CurrentPrincipal,
    status: Status | None = None,
    seller_id: Annotated[Identifier | None, Query(max_length=255)] = None,
    cursor: Annotated[Identifier | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> StreamPage:
    limit = min(limit, ctx.settings.streams_page_max)
    items, next_cursor = await ctx.streams.list(status=status, seller_id=seller_id,
                                                cursor=cursor, limit=limit)
    return StreamPage(items=[StreamOut.of(s) for s in items], next_cursor=next_cursor)


@router.get("/{stream_id}", response_model=StreamOut, responses=problems(404))
async def get_stream(stream_id: IdPath, ctx: Ctx, _principal: CurrentPrincipal) -> StreamOut:
    return StreamOut.of(await ctx.streams.get(stream_id))


def _transition_route(action: Action) -> None:
    async def move(stream_id: IdPath, principal: RequireUser, ctx: Ctx) -> StreamOut:
        return StreamOut.of(await ctx.streams.act(principal, stream_id, action))

    move.__name__ = f"{action.value}_stream"
    router.post(f"/{{stream_id}}/{action.value}", response_model=StreamOut,
                responses=problems(403, 404, 409),
                summary=f"{action.value.capitalize()} the stream")(move)


for _action in (Action.START, Action.PAUSE, Action.RESUME):
    _transition_route(_action)


@router.post("/{stream_id}/end", response_model=StreamOut, summary="End the stream",
             responses=problems(403, 404, 409))
async def end_stream(
    stream_id: IdPath, principal: RequireUser, ctx: Ctx,
    body: Annotated[EndRequest | None, Body()] = None,
) -> StreamOut:
    reason = body.reason if body is not None else None
    return StreamOut.of(await ctx.streams.act(principal, stream_id, Action.END, reason))


@router.post("/{stream_id}/viewers", response_model=StreamOut, summary="Join as a viewer",
             responses=problems(403, 404, 409))
async def join_stream(stream_id: IdPath, principal: RequireUser, ctx: Ctx) -> StreamOut:
    return StreamOut.of(await ctx.streams.join(principal, stream_id))


@router.delete("/{stream_id}/viewers/me", response_model=StreamOut, summary="Leave",
               responses=problems(403, 404, 409))
async def leave_stream(stream_id: IdPath, principal: RequireUser, ctx: Ctx) -> StreamOut:
    return StreamOut.of(await ctx.streams.leave(principal, stream_id))


@router.post("/{stream_id}/heartbeat", response_model=HeartbeatOut,
             responses=problems(403, 404, 409))
async def heartbeat(stream_id: IdPath, principal: RequireUser, ctx: Ctx) -> HeartbeatOut:
    result = await ctx.streams.heartbeat(principal, stream_id)
    return HeartbeatOut(role="host" if result.as_host else "viewer",
                        heartbeat_interval=ctx.settings.heartbeat_interval,
                        stream=StreamOut.of(result.stream))
