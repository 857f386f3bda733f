"""REST errors as RFC 9457 problem details (`application/problem+json`).

Anything a client can get wrong is raised as :class:`Problem` with a stable ``type`` slug from
the catalogue in :mod:`onair.problems` (re-exported here); the handlers installed by
:func:`install_problem_handlers` turn it, FastAPI's validation errors and Starlette's HTTP errors
into the same shape. Unexpected exceptions become a generic 500 whose body
never contains the exception text (it is logged with the request id instead).
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from onair import problems
from onair.problems import Problem, ProblemType

__all__ = ["PROBLEM_JSON", "Problem", "ProblemType", "field_problem", "install_problem_handlers",
           "internal_error", "outage_problem", "problem_response", "validation_problem"]

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("onair.errors")


def problem_response(problem: Problem) -> Response:
    return Response(
        orjson.dumps(problem.body(), default=str),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        # The offending input is left out on purpose: it may be huge or binary.
        errors.append(
            {"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", "")}
        )
    return errors


def validation_problem(err: ValidationError) -> Problem:
    """A body that failed a model, as the same problem+json as FastAPI's validation errors."""
    errors = [{"loc": ["body", *(str(part) for part in e["loc"])], "msg": e["msg"]}
              for e in err.errors(include_url=False, include_input=False)]
    first = errors[0]
    return problems.VALIDATION_ERROR(f"{'.'.join(first['loc'])}: {first['msg']}", errors=errors)


def field_problem(loc: tuple[str, ...], msg: str) -> Problem:
    """One refused field, in the shape of FastAPI's validation errors (for hand-parsed input)."""
    return _invalid_request([{"loc": list(loc), "msg": msg}])


def _invalid_request(errors: list[dict[str, Any]]) -> Problem:
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    return problems.VALIDATION_ERROR(f"{'.'.join(first['loc'])}: {first['msg']}", errors=errors)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return problem_response(_invalid_request(_validation_errors(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        kind = problems.BY_HTTP_STATUS.get(exc.status_code, problems.HTTP_ERROR)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != kind.title else None
        headers = dict(exc.headers or {})
        return problem_response(kind(detail, status=exc.status_code, headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Reached only from outside RequestContextMiddleware, which answers the rest itself.
        outage = outage_problem(exc)
        if outage is not None:
            log.warning("dependency_unavailable", path=request.url.path, error=type(exc).__name__)
            return problem_response(outage)
        log.error("unhandled_error", path=request.url.path, exc_info=exc)
        return problem_response(internal_error())


def outage_problem(exc: BaseException) -> Problem | None:
    """503 when what failed is something onair depends on (the database or the broker not
    answering, a lock held too long), not the request: the client should retry, not report a
    bug. None for anything else."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from onair.broker.base import BrokerUnavailable

    dependency_down = isinstance(
        exc, (OperationalError, InterfaceError, OSError, TimeoutError, BrokerUnavailable)
    ) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    if not dependency_down:
        return None
    return problems.SERVICE_UNAVAILABLE(
        "A service onair depends on did not answer; retry shortly.", headers={"Retry-After": "1"})


def internal_error() -> Problem:
    """What a client sees of a bug: never the exception's text (that is logged)."""
    return problems.INTERNAL_ERROR(
        "Something went wrong on our side; the request id is in the logs.")
