"""The few requests that dominate a busy server, served without FastAPI's per-request machinery.

A chat send is most of what a live stream's server answers. Through Starlette's exception
middleware, the router's linear match, FastAPI's dependency solver and a Response object, a send
cost about a third more server CPU than the send itself needs (py-spy, `bench/chat.py`).
:class:`HotRoutes` sits inside :class:`~onair.api.middleware.RequestContextMiddleware` (so request
ids, metrics, the body-size cap and access logs are the same for every request) and answers an
exact method + path-template match with a plain handler; everything else goes on to FastAPI.

Each hot route is also declared as an ordinary FastAPI route calling the same handler, so it is in
the OpenAPI document and an app built with ``hot_routes=False`` answers identically — the
parity test compares the two byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from onair.context import AppContext
from onair.errors import Problem, problem_response


@dataclass(frozen=True)
class Reply:
    """A JSON answer: status, the encoded body and extra headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    def asgi_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", self.media_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
            *((name.lower().encode("latin-1"), value.encode("latin-1"))
              for name, value in self.headers.items()),
        ]


Handler = Callable[[AppContext, Mapping[str, str], Headers, bytes], Awaitable[Reply]]


@dataclass(frozen=True)
class HotRoute:
    method: str
    path: str  # the template, e.g. /api/v1/streams/{stream_id}/chat (metrics label it so)
    handler: Handler
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))


class HotRoutes:
    def __init__(self, app: ASGIApp, ctx: AppContext, routes: Sequence[HotRoute]) -> None:
        self.app = app
        self.ctx = ctx
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                if scope["method"] == route.method:
                    match = route.pattern.match(scope["path"])
                    if match is not None:
                        scope["route"] = route
                        await self._serve(route, match.groupdict(), scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def _serve(self, route: HotRoute, path_params: dict[str, str], scope: Scope,
                     receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive)
            if body is None:
                return  # the client went away before it finished sending
            reply = await route.handler(self.ctx, path_params, Headers(scope=scope), body)
        except Problem as problem:  # anything else: RequestContextMiddleware's 500 or 503
            await problem_response(problem)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": reply.asgi_headers()})
        await send({"type": "http.response.body", "body": reply.body})


async def read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer_as_route(handler: Handler, request: Request) -> Response:
    """A hot route's handler as the endpoint of its documented FastAPI route."""
    reply = await handler(request.app.state.ctx, request.path_params, request.headers,
                          await request.body())
    return Response(reply.body, reply.status, dict(reply.headers), media_type=reply.media_type)


def openapi_for(model: type[BaseModel], *, body_required: bool) -> dict[str, object]:
    """What FastAPI would have documented for ``stream_id`` and a JSON body of ``model``
    (the endpoints take the raw Request, so FastAPI cannot see either)."""
    return {
        "parameters": [{"name": "stream_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": body_required, "content": {"application/json": {
            "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}},
    }
