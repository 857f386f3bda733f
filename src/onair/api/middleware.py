"""Pure ASGI middleware (BaseHTTPMiddleware would skip WebSocket scopes and buffer bodies).

Per HTTP request: a request id (taken from `X-Request-ID` or made up) bound to the logs and echoed
in the response with `X-Content-Type-Options: nosniff`, Prometheus counts/latency by route
template and status, an access log line, and a cap on the request body size (413 problem+json).
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onair.errors import Problem, internal_error, outage_problem, problem_response
from onair.logs import REQUEST_ID
from onair.metrics import Metrics
from onair.problems import PAYLOAD_TOO_LARGE

log = structlog.get_logger("onair.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A random prefix per process and a counter: unique like random ids, without a getrandom()
# system call per request.
_PROCESS_PREFIX = secrets.token_hex(6)
# On every response: browsers must not guess a script or page out of a JSON body or a static file.
NOSNIFF = (b"x-content-type-options", b"nosniff")
_SEQUENCE = itertools.count(1)


def new_request_id() -> str:
    return f"{_PROCESS_PREFIX}{next(_SEQUENCE):08x}"


def body_too_large(limit: int) -> Problem:
    return PAYLOAD_TOO_LARGE(f"the body exceeds {limit} bytes", limit=limit)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = declared = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        request_id = given if given and _REQUEST_ID.match(given) else new_request_id()
        request_id_header = (b"x-request-id", request_id.encode())
        added = (request_id_header, NOSNIFF)
        bound = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            response = problem_response(body_too_large(self.max_body))
            response.headers["x-request-id"] = request_id
            response.headers["x-content-type-options"] = "nosniff"
            await response(scope, receive, send)
            self._observe(scope, 413, started)
            REQUEST_ID.reset(bound)
            return

        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise body_too_large(self.max_body)
            return message

        responding = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status, responding = message["status"], True
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            if responding:
                raise  # too late for an error response; the server closes the connection
            # Here rather than in Starlette's ServerErrorMiddleware (outside this one) so the
            # log line and the answer carry the request id.
            outage = outage_problem(exc)
            if outage is not None:  # retryable: a short line, no traceback per request
                log.warning("dependency_unavailable", path=scope.get("path"),
                            error=type(exc).__name__, detail=str(exc)[:200])
                await problem_response(outage)(scope, receive, send_with_id)
            else:
                log.error("unhandled_error", path=scope.get("path"), exc_info=exc)
                await problem_response(internal_error())(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, started)
            REQUEST_ID.reset(bound)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        # Metric labels must stay a small set: any token is a valid HTTP method.
        label = method if method in _KNOWN_METHODS else "other"
        self.metrics.observe_request(label, template, status, elapsed)
        if template not in ("/metrics", "/healthz", "/readyz"):
            log.info("request", method=method, route=template, path=scope.get("path"),
                     status=status, ms=round(elapsed * 1000, 2))
