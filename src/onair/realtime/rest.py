"""REST broadcast for server-side senders (spec §4.4): ``POST /realtime/v1/api/broadcast`` (batch)
and ``POST /realtime/v1/api/broadcast/{topic}/events/{event}``. Both answer 202 with no body.

The caller's token (Bearer, else ``apikey``) is checked like a socket token; messages to private
topics the caller may not write are skipped silently, as Supabase does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from onair.domain.identity import Principal
from onair.realtime.dispatcher import TokenRejected
from onair.realtime.policies import role_of
from onair.realtime.service import RealtimeService
from onair.realtime.signals import FORGED_SIGNAL, forged_signal
from onair.topics import channel_topic, is_stream_topic

if TYPE_CHECKING:
    from onair.context import AppContext

router = APIRouter(prefix="/realtime/v1/api", tags=["realtime"])


def _error_doc(description: str, member: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": {member: schema}, "required": [member]}}}}


# Supabase's error bodies (not problem+json: its clients read these); documented for OpenAPI.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error_doc("No valid token", "message", {"type": "string"}),
    403: _error_doc("A signalling message whose 'from' is not the sender's own peer id (nothing is sent)",
                    "message", {"type": "string"}),
    415: _error_doc("Not JSON", "error", {"type": "string"}),
    422: _error_doc("Invalid messages (field → reasons)", "errors", {"type": "object"}),
}
# The single-event form also has path and query parameters, which FastAPI checks first.
ONE_EVENT_ERRORS = {**ERRORS, 422: {**ERRORS[422], "content": {
    **ERRORS[422]["content"],
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}
# A topic or event with an encoded "/" ("..%2F..") is a path of another shape: no route, 404.
ONE_EVENT_ERRORS[404] = {"description": "No route (a topic or event containing '/')", "content": {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


class BroadcastMessage(BaseModel):
    topic: str = Field(min_length=1, max_length=255)
    event: str = Field(min_length=1, max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict)
    private: bool = False


class BroadcastBatch(BaseModel):
    messages: list[BroadcastMessage] = Field(max_length=100)


def _service(request: Request) -> RealtimeService:
    ctx: AppContext = request.app.state.ctx
    return ctx.realtime


async def _principal(request: Request, service: RealtimeService) -> Principal | None:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("apikey")
    if not token:
        return None
    try:
        if service.verify_async is not None:
            return (await service.verify_async(token)).principal
        return service.verify(token).principal
    except TokenRejected:
        return None


def _unauthorized() -> JSONResponse:
    return JSONResponse({"message": "Unauthorized"}, status_code=401)


def _too_large() -> JSONResponse:
    return JSONResponse({"errors": {"payload": ["Payload size exceeds tenant limit"]}}, status_code=422)


def _allowed(service: RealtimeService, principal: Principal | None, msg: BroadcastMessage) -> bool:
    return service.authorizer.allowed(principal, msg.topic, "broadcast", "write", private=msg.private, event=msg.event)


def _forged(principal: Principal | None, msg: BroadcastMessage) -> bool:
    return is_stream_topic(msg.topic) and forged_signal(principal, msg.event, msg.payload)


def _forged_response() -> JSONResponse:
    return JSONResponse({"message": FORGED_SIGNAL}, status_code=403)


def _send(service: RealtimeService, principal: Principal | None, msg: BroadcastMessage, request: Request) -> JSONResponse | None:
    """Fan one message out, or the error that refused it: client senders get the stream-channel
    payload limit and the byte budgets of sockets (shared with them, so switching gains nothing)."""
    if not _allowed(service, principal, msg):
        return None
    if _forged(principal, msg):
        return _forged_response()
    if role_of(principal) != "service":
        size = len(orjson.dumps(msg.payload)) + len(msg.event)
        if is_stream_topic(msg.topic) and size > service.limits.stream_max_payload_bytes:
            return _too_large()
        ip = request.client.host if request.client else None
        if not service.dispatcher.spend(principal, f"ip:{ip}", channel_topic(msg.topic), size, service.monotonic(),
                                        msg.event):
            return JSONResponse({"message": "You have exceeded your rate limit"}, status_code=429)
    service.broadcast(channel_topic(msg.topic), msg.event, msg.payload)
    return None


@router.post("/broadcast", status_code=202, response_class=Response, responses=ERRORS)
async def broadcast(request: Request) -> Response:
    service = _service(request)
    principal = await _principal(request, service)
    if principal is None:
        return _unauthorized()
    body = await request.body()
    if len(body) > service.limits.max_payload_bytes:
        return _too_large()
    try:
        batch = BroadcastBatch.model_validate_json(body or b"{}")
    except ValidationError as err:
        errors = {".".join(str(p) for p in e["loc"]): [e["msg"]] for e in err.errors()}
        return JSONResponse({"errors": errors}, status_code=422)
    for msg in batch.messages:
        await service.authorizer.prepare(principal, msg.topic)
    if any(_allowed(service, principal, msg) and _forged(principal, msg) for msg in batch.messages):
        return _forged_response()  # before any is sent: a refused batch changes nothing
    for msg in batch.messages:
        refused = _send(service, principal, msg, request)
        if refused is not None:
            return refused
    return Response(status_code=202)


@router.post("/broadcast/{topic}/events/{event}", status_code=202, response_class=Response,
             responses=ONE_EVENT_ERRORS)
async def broadcast_one(request: Request, topic: str, event: str, private: bool = False) -> Response:
    service = _service(request)
    principal = await _principal(request, service)
    if principal is None:
        return _unauthorized()
    if request.headers.get("content-type", "application/json").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "Unsupported Media Type. Use application/json or application/octet-stream"},
                            status_code=415)
    body = await request.body()
    if len(body) > service.limits.max_payload_bytes:
        return _too_large()
    try:
        msg = BroadcastMessage.model_validate({"topic": topic, "event": event, "private": private,
                                               "payload": orjson.loads(body or b"{}")})
    except (ValidationError, ValueError):
        return JSONResponse({"errors": {"payload": ["must be a JSON object"]}}, status_code=422)
    await service.authorizer.prepare(principal, msg.topic)
    refused = _send(service, principal, msg, request)
    return refused or Response(status_code=202)
