"""Pure ASGI middleware (BaseHTTPMiddleware would skip WebSocket scopes and buffer bodies).

Per HTTP request: a request id (taken from `X-Request-ID` or made up) bound to the logs and echoed
in the response, Prometheus counts/latency by route template and status, an access log line, and
a cap on the request body size (413 problem+json).
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onair.errors import Problem, problem_response
from onair.metrics import Metrics

log = structlog.get_logger("onair.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload-too-large", "Request body too large",
                         f"the body exceeds {limit} bytes", limit=limit)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            response = problem_response(BodyTooLarge(self.max_body))
            response.headers["x-request-id"] = request_id
            await response(scope, receive, send)
            self._observe(scope, 413, started)
            structlog.contextvars.unbind_contextvars("request_id")
            return

        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._observe(scope, status, started)
            structlog.contextvars.unbind_contextvars("request_id")

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.observe_request(method, template, status, elapsed)
        if template not in ("/metrics", "/healthz", "/readyz"):
            log.info("request", method=method, route=template, path=scope.get("path"),
                     status=status, ms=round(elapsed * 1000, 2))
