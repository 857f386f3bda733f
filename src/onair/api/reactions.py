"""REST for reactions: ``POST /streams/{id}/reactions`` counts one tap, as a ``react``
broadcast on the stream's channel does (issue 14; counting in services/reactions.py).

Answers 202 whether the tap was counted or dropped by the per-user rate limit (excess taps are
dropped silently, as on the socket); refuses what the socket refuses, with problem types: no user
token (401), an unknown kind (422 ``unknown-reaction-kind``), an unknown stream (404), a banned or
muted user (403 ``reactions-not-allowed``), an ended stream (409 ``stream-ended``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from onair import problems as problems_
from onair.api.deps import Ctx, RequireUser
from onair.api.fields import Identifier, IdPath
from onair.api.openapi import problems
from onair.domain.reactions import KINDS
from onair.services.reactions import TAP_EVENT
from onair.services.streams import require_signed_in
from onair.topics import stream_topic

router = APIRouter(prefix="/streams", tags=["reactions"], responses=problems(401))


class ReactionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Identifier = Field(max_length=16, description=f"One of {', '.join(KINDS)} (any ASCII letter casing).")


@router.post("/{stream_id}/reactions", status_code=202, response_class=Response,
             summary="React (one tap)", responses=problems(403, 404, 409, 422))
async def react(stream_id: IdPath, body: ReactionIn, principal: RequireUser, ctx: Ctx) -> Response:
    realtime = ctx.realtime
    topic = stream_topic(stream_id)
    await realtime.authorizer.prepare(principal, topic)
    facts = realtime.authorizer.facts_of(stream_id)
    if facts is None and not principal.is_staff:
        raise problems_.STREAM_NOT_FOUND(f"no stream {stream_id}")
    if facts is not None and facts.ended:  # for staff too: nobody is watching an ended stream
        raise problems_.STREAM_ENDED("reactions are closed")
    if not realtime.authorizer.allowed(principal, topic, "broadcast", "write", event=TAP_EVENT):
        raise problems_.REACTIONS_NOT_ALLOWED("you may not react on this stream")
    refused = ctx.reactions.tap(require_signed_in(principal), stream_id, body.kind)
    if refused is not None:
        raise problems_.UNKNOWN_REACTION_KIND(f"kind must be one of {', '.join(KINDS)}")
    return Response(status_code=202)
